"""A Gorila bundle (one worker task): learner + replay memory + actors.

In one process:
  * a `tf.distribute.Server`: the chief's learner closures run here;
  * a Reverb server with this bundle's replay table (learner closures on this
    worker read it in-process, without gRPC), checkpointed under
    <run_dir>/replay/bundle_<i>/ when the chief checkpoints;
  * the actors, in a thread: a vector env of real games, a local Q-network
    copy, one replay writer per env.

The process serves until it is stopped (SIGTERM/SIGINT from the launcher or
the cluster manager); the chief decides when training is over.

A bundle writes into the run directory only its replay checkpoints, and only
when the chief asks its Reverb server for one: the chief holds the run
directory's lease (lease.py) whenever it asks, so a bundle of a refused
second launch writes nothing there.
"""

from __future__ import annotations

import signal
import threading
from typing import Optional

import reverb
from absl import logging

from gorila_tf import actor as actor_lib
from gorila_tf import broadcast
from gorila_tf import checkpointing
from gorila_tf import cluster as cluster_lib
from gorila_tf import config as config_lib
from gorila_tf import environments
from gorila_tf import metrics
from gorila_tf import networks
from gorila_tf import replay


def start_replay_server(task: cluster_lib.Task, config: config_lib.GorilaConfig,
                        info: environments.EnvInfo,
                        run_dir: Optional[str]) -> reverb.Server:
  """The bundle's replay, loaded from its last checkpoint in run_dir if any."""
  address = cluster_lib.reverb_address(task.address)
  cluster_lib.check_port_free(address, f'the replay of worker:{task.index}')
  if run_dir:
    checkpointing.check_compatible(
        run_dir, checkpointing.model_signature(config, info, task.num_ps))
  _, port = cluster_lib.split_address(address)
  return reverb.Server(tables=[replay.make_replay_table(config, info)], port=port,
                       checkpointer=checkpointing.replay_checkpointer(
                           run_dir, task.index))


def make_actor(task: cluster_lib.Task, config: config_lib.GorilaConfig,
               info: environments.EnvInfo, replay_port: int) -> actor_lib.Actor:
  """The bundle's actors, writing to the replay server on `replay_port`."""
  seed = config.run.seed * 10_007 + task.index * 1_000
  n = config.actor.envs_per_bundle
  env = environments.VectorEnv(config.env, n, seed)
  q_net = networks.make_q_network(config.network, info, seed=seed)
  client = reverb.Client(f'localhost:{replay_port}')
  writers = [replay.TransitionWriter(client, info.frame_stack,
                                     config.learner.n_step,
                                     chunk_length=config.replay.chunk_length)
             for _ in range(n)]
  chief = task.chief_reverb_address()
  return actor_lib.Actor(
      config, info, env, q_net, writers,
      broadcast.ParameterSubscriber(chief, q_net),
      metrics.StatsReporter(chief, task.index, config.actor.stats_interval_s),
      seed=seed, bundle=task.index, num_bundles=task.num_workers)


def run(task: cluster_lib.Task, config: config_lib.GorilaConfig,
        run_dir: Optional[str] = None) -> None:
  """The worker role: serve learner closures and act until stopped."""
  info = environments.env_info(config.env)
  replay_server = start_replay_server(task, config, info, run_dir)
  server = cluster_lib.start_server(task, config.run.intra_op_threads)
  del server  # serves in the background for the life of the process
  logging.info('bundle %d: learner at %s, replay on port %d', task.index,
               task.address, replay_server.port)
  stop = threading.Event()
  failure = []

  def act():
    actor = make_actor(task, config, info, replay_server.port)
    try:
      actor.run(stop)
    except Exception as e:  # pylint: disable=broad-except
      if not stop.is_set():
        logging.exception('bundle %d actors failed', task.index)
        failure.append(e)
    finally:
      stop.set()
      actor.close()

  def on_signal(signum, frame):
    del frame
    logging.info('bundle %d: signal %d, stopping', task.index, signum)
    stop.set()

  signal.signal(signal.SIGTERM, on_signal)
  signal.signal(signal.SIGINT, on_signal)
  thread = threading.Thread(target=act, name=f'actors-{task.index}', daemon=True)
  thread.start()
  while not stop.wait(1.0):
    pass
  replay_server.stop()  # unblocks writers waiting on the rate limiter
  thread.join(timeout=10)
  if failure:
    raise failure[0]
