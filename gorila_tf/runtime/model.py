"""The model the chief owns: variables on the ps tasks, checkpoint, replay feed.

Everything other modules (the chief's loop, the in-process cluster test, the
benchmark) need of the chief's model, in one public place:

    model = build_model(strategy, builder, num_workers)  # builder.DQNBuilder
      # under strategy.scope(): online and target Q-networks, optimizer slots
      # next to each variable part, the learners' counters; variables larger
      # than launch.min_shard_bytes split over the ps tasks. Plus the chief's
      # counters (frames, episodes, wall time, ...), kept on the chief.
    checkpoint = model.checkpoint()        # model.checkpoint_items()
    dataset_fn = make_dataset_fn(task, builder)
    iterator = iter(cluster_coordinator.create_per_worker_dataset(dataset_fn))
      # each worker's learner samples its own bundle's replay (local mode) or
      # every bundle's (global mode): per_worker_replay(task, config)

A checkpoint's `q_network` restores into a plain, unsharded network in another
process (evaluator, play, export) as long as the shard count is unchanged.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import tensorflow as tf

from gorila_tf import config as config_lib
from gorila_tf.agent import learner as learner_lib
from gorila_tf.agent import networks
from gorila_tf.agent import optimizers
from gorila_tf.runtime import builder as builder_lib
from gorila_tf.runtime import cluster as cluster_lib
from gorila_tf.runtime import faults

@dataclasses.dataclass(kw_only=True)
class ShardedModel:
  """The variables that live on the ps tasks, plus the chief's counters."""

  q_net: networks.QNetwork  # the online network
  target_net: networks.QNetwork
  optimizer: optimizers.Optimizer  # its slots sit next to each variable part
  learner_state: learner_lib.LearnerState
  frames: tf.Variable  # frames reported by actors
  env_steps: tf.Variable
  episodes: tf.Variable
  wall_time_s: tf.Variable  # training time summed over restarts
  frames_by_bundle: tf.Variable  # [num_workers]
  resumes: tf.Variable  # times the run was resumed from a checkpoint
  saved_at: tf.Variable  # unix time of the checkpoint's save

  def checkpoint_items(self) -> dict:
    """What a checkpoint holds, by the names it is saved under.

    `q_network`, `target_network`, `optimizer` (its iterations and slots),
    the counters `frames`, `env_steps`, `episodes`, `wall_time_s`,
    `frames_by_bundle`, `resumes`, `saved_at`, and the learner state's items
    (`learner.LearnerState.checkpoint_items`).
    """
    return dict(
        q_network=self.q_net, target_network=self.target_net,
        optimizer=self.optimizer, frames=self.frames, env_steps=self.env_steps,
        episodes=self.episodes, wall_time_s=self.wall_time_s,
        frames_by_bundle=self.frames_by_bundle, resumes=self.resumes,
        saved_at=self.saved_at, **self.learner_state.checkpoint_items())

  def checkpoint(self) -> tf.train.Checkpoint:
    """A `tf.train.Checkpoint` of `checkpoint_items()`."""
    return tf.train.Checkpoint(**self.checkpoint_items())

  def state_variables(self) -> list:
    """Every checkpointed variable, in one fixed order.

    A sharded parameter counts as one (read whole); optimizer slots are per
    part, as they live. The same order for this model and for its plain
    copy (`build_plain_model`), so values read here assign there.
    """
    variables = []
    for item in self.checkpoint_items().values():
      if isinstance(item, networks.QNetwork):
        variables.extend(item.params)
      elif isinstance(item, optimizers.Optimizer):
        variables.append(item.iterations)
        for slots in item.slots.values():
          variables.extend(slots)
      else:
        variables.append(item)
    return variables

  def part_shapes(self) -> list[tuple[int, ...]]:
    """Shapes of the online network's parts (what the optimizer slots follow)."""
    return [tuple(p.shape) for p in self.q_net.parts()]


def make_state_reader(model: ShardedModel):
  """A function returning `model.state_variables()`' values, traced now.

  The chief calls only functions traced at start while it trains: in its
  process, tracing a new function (and TensorFlow's own checkpoint saving,
  which traces one per save) waits on every worker, and so would stall on
  one that is paused or cut off (see checkpoint_writer.py).
  """
  variables = model.state_variables()

  @tf.function
  def read_state():
    return [tf.convert_to_tensor(v) for v in variables]

  read_state.get_concrete_function()
  return read_state


def make_progress_reader(model: ShardedModel):
  """A function returning the ps-side counters the chief reports, traced now.

  Returns a dict: `updates` (applied updates, the optimizer's iterations) and
  the learner state's counters (see `learner.LearnerState`).
  """
  state = model.learner_state

  @tf.function
  def read_progress():
    # A closure adds its applied count at its end, after its steps' applies:
    # read the counts before the update count, so that `updates - applied`
    # is never negative (it is the in-flight closures' applies, at most one
    # closure's steps per worker; equal when no closure runs).
    counts = {'applied': state.applied.read_value(),
              'discarded_stale': state.discarded_stale.read_value(),
              'discarded_outlier': state.discarded_outlier.read_value(),
              'updates_by_worker': state.updates_by_worker.read_value()}
    with tf.control_dependencies(tf.nest.flatten(counts)):
      return {'updates': model.optimizer.iterations.read_value(), **counts}

  read_progress.get_concrete_function()
  return read_progress


def build_model(strategy: tf.distribute.Strategy, builder: builder_lib.DQNBuilder,
                num_workers: int) -> ShardedModel:
  """Creates the model's variables under `strategy` (see the module docstring)."""
  with strategy.scope():
    return build_plain_model(builder, num_workers)


def build_plain_model(builder: builder_lib.DQNBuilder, num_workers: int,
                      part_shapes: Optional[list[tuple[int, ...]]] = None
                      ) -> ShardedModel:
  """The model's variables where they are created: under a strategy's scope
  sharded (build_model), else plain and local.

  With `part_shapes` (the sharded model's), the optimizer slots take those
  shapes, so a checkpoint of this copy restores into the sharded model (a
  whole tensor restores into its shards) and into a plain network.
  """
  q_net = builder.make_network()
  target_net = builder.make_network()
  # Slots next to each (part of a) variable; created here because closures
  # on workers cannot create variables.
  parts = (q_net.parts() if part_shapes is None else
           [tf.Variable(tf.zeros(shape), trainable=False) for shape in part_shapes])
  optimizer = builder.make_optimizer(parts)
  state = learner_lib.LearnerState.create(num_workers)
  return _with_chief_counters(q_net, target_net, optimizer, state, num_workers)


def _with_chief_counters(q_net, target_net, optimizer, state,
                         num_workers: int) -> ShardedModel:
  counter = lambda: tf.Variable(0, dtype=tf.int64, trainable=False)
  seconds = lambda: tf.Variable(0.0, dtype=tf.float64, trainable=False)
  return ShardedModel(
      q_net=q_net, target_net=target_net, optimizer=optimizer,
      learner_state=state, frames=counter(), env_steps=counter(),
      episodes=counter(), wall_time_s=seconds(),
      frames_by_bundle=tf.Variable(tf.zeros([num_workers], tf.int64),
                                   trainable=False),
      resumes=counter(), saved_at=seconds())


def per_worker_replay(task: cluster_lib.Task, config: config_lib.GorilaConfig):
  """(addresses, bundle indices) a worker's learner samples, chosen at run time."""
  addresses = tf.constant(task.worker_reverb_addresses())
  if config.replay.mode == 'global':
    return addresses, tf.range(task.num_workers)
  # Local (bundled) replay: the dataset function is traced once for all
  # workers; the worker index is resolved when it runs on each worker.
  index = tf.distribute.coordinator.experimental_get_current_worker_index()
  index = tf.reshape(tf.cast(index, tf.int32), [1])
  return tf.gather(addresses, index), index


def make_dataset_fn(task: cluster_lib.Task, builder: builder_lib.DQNBuilder):
  """The dataset function for `ClusterCoordinator.create_per_worker_dataset`.

  Each worker's dataset yields batches of `learner.batch_size` transitions
  from `per_worker_replay` (faults.batch_delay_ms: a test-only slow worker;
  faults.end_replay_stream: a test-only stream that ends).
  """

  def dataset_fn() -> tf.data.Dataset:
    worker = tf.distribute.coordinator.experimental_get_current_worker_index()
    delay_ms = faults.batch_delay_ms(builder.config.faults, worker)
    addresses, indices = per_worker_replay(task, builder.config)
    return faults.end_replay_stream(
        builder.config.faults, builder.make_dataset(addresses, indices, delay_ms))

  return dataset_fn
