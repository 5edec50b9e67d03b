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
second launch writes nothing there. At its start it may rename its own
replay checkpoint directory, when that cannot be read (Reverb's server
would fail at every start: checkpointing.set_aside_unreadable_replay).
"""

from __future__ import annotations

import signal
import sys
import threading
import traceback
from typing import Optional

import reverb
from absl import logging

from gorila_tf import config as config_lib
from gorila_tf import errors
from gorila_tf.agent import actor as actor_lib
from gorila_tf.agent import replay
from gorila_tf.runtime import broadcast
from gorila_tf.runtime import builder as builder_lib
from gorila_tf.runtime import checkpointing
from gorila_tf.runtime import cluster as cluster_lib
from gorila_tf.runtime import deadlines
from gorila_tf.runtime import metrics
from gorila_tf.runtime import run_dir as run_dir_lib


class LearnerWatch:
  """Notices a learner that stopped while the chief goes on.

  After a network fault, a learner call the chief made to this worker can stay
  unanswered for good (measured on emulated hosts: after 1 of 6 links cut
  for 30 s, the chief still waited in TF's eager Enqueue call to the worker
  minutes after the link was back). The chief's coordinator then sends this
  worker nothing more: its replay is no longer sampled and its actors block
  on the rate limiter. A restart frees it: the coordinator sees the worker
  fail and schedules on the new one, as for a killed worker.

  Stalled: at `checks` checks in a row (each after `every_s` of this
  process's own running time, so a paused process is not judged on its
  pause) the replay was not sampled while holding enough to be (`min_size`),
  and the chief answered and had published parameters again since the check
  before (it is live and reachable: not a partition, not a chief restoring
  or stopping, which publish nothing).
  """

  def __init__(self, stall_s: float, min_size: int, every_s: float = 5.0):
    self.every_s = every_s
    self.checks = max(1, round(stall_s / every_s))
    self._min_size = min_size
    self._sampled = None  # the replay's sample count at the last check
    self._published = None  # the chief's publication count at the last check
    self._streak = 0  # checks in a row that found the learner idle

  def check(self, stats: Optional[deadlines.ReplayStats],
            published: Optional[int]) -> bool:
    """One check: True when the learner has stalled."""
    idle = (stats is not None and stats.size >= self._min_size
            and stats.sampled == self._sampled
            and published is not None and self._published is not None
            and published > self._published)
    self._streak = self._streak + 1 if idle else 0
    self._sampled = None if stats is None else stats.sampled
    self._published = published
    return self._streak >= self.checks

  def describe(self) -> str:
    return (f'its learner sampled nothing for {self._streak * self.every_s:.0f} '
            's while the chief answered and published parameters: restarting '
            'this bundle so that the chief reconnects to it (a learner call cut '
            'by a network fault can stay unanswered for good)')


# A stopping bundle waits this long for its actors' thread, well inside the
# launcher's 10-s grace (launch/local.py): a restarted worker's actors once
# stayed blocked after its SIGTERM (where, unknown: nothing logged it), its
# main thread waited 10 s for them, and the launcher killed it first
# (2026-12-07, the suite's killed-worker-and-ps run). The process ends
# with os._exit, the thread with it.
ACTORS_STOP_S = 5.0


def where(thread: threading.Thread) -> str:
  """`thread`'s current stack on one line, the innermost call first."""
  frame = sys._current_frames().get(thread.ident)  # pylint: disable=protected-access
  if frame is None:
    return 'gone'
  return ' <- '.join(f'{f.filename.rsplit("/", 1)[-1]}:{f.lineno} {f.name}'
                     for f in reversed(traceback.extract_stack(frame)))


def start_replay_server(task: cluster_lib.Task, builder: builder_lib.DQNBuilder,
                        run_dir: Optional[str]) -> reverb.Server:
  """The bundle's replay, loaded from its last checkpoint in run_dir if any."""
  address = cluster_lib.reverb_address(task.address)
  cluster_lib.check_port_free(address, f'the replay of worker:{task.index}')
  if run_dir:
    run_dir_lib.check_compatible(run_dir, run_dir_lib.model_signature(
        builder.config, builder.info, task.num_ps))
  set_aside = checkpointing.set_aside_unreadable_replay(run_dir, task.index)
  if set_aside:
    logging.warning('%s', set_aside)
  _, port = cluster_lib.split_address(address)
  return reverb.Server(tables=[builder.make_replay_table()], port=port,
                       checkpointer=checkpointing.replay_checkpointer(
                           run_dir, task.index))


def make_actor(task: cluster_lib.Task, builder: builder_lib.DQNBuilder,
               replay_port: int, stop: threading.Event) -> actor_lib.Actor:
  """The bundle's actors, writing to the replay server on `replay_port`,
  acting with the parameters the chief publishes, until `stop`."""
  chief = task.chief_reverb_address()
  return builder.make_actor(
      reverb.Client(f'localhost:{replay_port}'),
      lambda q_net: broadcast.ParameterSubscriber(chief, q_net),
      metrics.StatsReporter(chief, task.index,
                            builder.config.actor.stats_interval_s),
      seed=builder_lib.actor_seed(builder.config, task.index),
      bundle=task.index, num_bundles=task.num_workers, stop=stop)


def run(task: cluster_lib.Task, config: config_lib.GorilaConfig,
        run_dir: Optional[str] = None) -> None:
  """The worker role: serve learner closures and act until stopped."""
  builder = builder_lib.DQNBuilder(config)
  replay_server = start_replay_server(task, builder, run_dir)
  server = cluster_lib.start_server(task, config.run.intra_op_threads)
  del server  # serves in the background for the life of the process
  logging.info('bundle %d: learner at %s, replay on port %d', task.index,
               task.address, replay_server.port)
  stop = threading.Event()
  failure = []

  def act():
    actor = make_actor(task, builder, replay_server.port, stop)
    try:
      actor.run(stop)
    except Exception as e:  # pylint: disable=broad-except
      if not stop.is_set():
        logging.exception('bundle %d actors failed', task.index)
        failure.append(e)
    finally:
      stop.set()
      actor.close(flush_timeout_ms=actor_lib.STOP_FLUSH_MS)

  def on_signal(signum, frame):
    del frame
    logging.info('bundle %d: signal %d, stopping', task.index, signum)
    stop.set()

  signal.signal(signal.SIGTERM, on_signal)
  signal.signal(signal.SIGINT, on_signal)
  thread = threading.Thread(target=act, name=f'actors-{task.index}', daemon=True)
  thread.start()
  # Checked at least twice per publication, so that a live chief is seen.
  watch = (LearnerWatch(config.run.learner_stall_s, config.replay.min_size,
                        every_s=max(5.0, 2 * config.run.publish_every_s))
           if config.run.learner_stall_s > 0 else None)
  own_replay = deadlines.ReplayProbe(f'localhost:{replay_server.port}',
                                     replay.REPLAY_TABLE, timeout_s=1.0)
  chief = broadcast.PublicationProbe(task.chief_reverb_address(), timeout_s=1.0)
  seconds = 0
  while not stop.wait(1.0):
    seconds += 1  # of running time: a paused process counts none
    if watch is None or seconds % round(watch.every_s):
      continue
    if watch.check(own_replay.stats(), chief.publications()):
      failure.append(errors.Stuck(f'bundle {task.index}: {watch.describe()}'))
      stop.set()
  replay_server.stop()  # unblocks writers waiting on the rate limiter
  thread.join(timeout=ACTORS_STOP_S)
  if thread.is_alive():
    logging.warning('bundle %d: its actors did not stop within %.0f s; '
                    'exiting without them. Their thread was at: %s', task.index,
                    ACTORS_STOP_S, where(thread))
  if failure:
    raise failure[0]
