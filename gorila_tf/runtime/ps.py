"""The parameter server (ps) role: holds a share of the sharded variables.

The chief creates the online and target Q-networks, the optimizer slots and
the learners' counters under `ParameterServerStrategy.scope()` (model.py); a
size-based partitioner splits variables larger than `launch.min_shard_bytes`
across the ps tasks and spreads the small ones round-robin. Learner closures
read those variables and apply their gradients in place, on the ps device
that holds each part (asynchronous SGD, as in the paper). A ps task runs no
Python loop of its own:

    start a tf.distribute.Server for this task
    serve reads and updates of the variables placed here, until stopped

`make_strategy` is the chief's end of the same arrangement.
"""

from __future__ import annotations

import tensorflow as tf
from absl import logging

from gorila_tf.runtime import cluster as cluster_lib


def serve(task: cluster_lib.Task, intra_op_threads: int = 0) -> None:
  """The ps role: serve variables until the process is stopped."""
  server = cluster_lib.start_server(task, intra_op_threads)
  logging.info('ps %d serving at %s', task.index, task.address)
  server.join()


def make_strategy(task: cluster_lib.Task,
                  min_shard_bytes: int) -> tf.distribute.ParameterServerStrategy:
  """The chief's strategy: variables over the ps tasks, closures on workers."""
  resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
      tf.train.ClusterSpec(task.training_cluster), task_type='chief', task_id=0,
      rpc_layer='grpc')
  partitioner = tf.distribute.experimental.partitioners.MinSizePartitioner(
      min_shard_bytes=min_shard_bytes, max_shards=task.num_ps)
  # TensorFlow logs the cluster spec twice, its session-config proto (a dozen
  # lines, through absl) and its device list at INFO while it connects:
  # start-up noise on every launch's console. Warnings and errors still
  # come through.
  tf_logger, verbosity = tf.get_logger(), logging.get_verbosity()
  level = tf_logger.level
  tf_logger.setLevel('WARNING')
  logging.set_verbosity(logging.WARNING)
  try:
    strategy = tf.distribute.ParameterServerStrategy(
        resolver, variable_partitioner=partitioner)
  finally:
    tf_logger.setLevel(level)
    logging.set_verbosity(verbosity)
  logging.info('connected to %d ps and %d workers', task.num_ps, task.num_workers)
  return strategy
