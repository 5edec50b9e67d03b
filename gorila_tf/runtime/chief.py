"""The chief: drives the learners on the sharded model and keeps the books.

The chief is the only process that sees the whole run. It owns the sharded
model (model.py: variables on the ps tasks, checkpoint items, the per-worker
replay dataset) and TensorFlow's ClusterCoordinator, which runs learner
closures on the workers. Its loop:

    restore the latest checkpoint (or initialise)
    trace every function the loop calls; publish parameters so actors start
    until the frame budget is spent:
      keep `run.max_closures_in_flight` learner closures scheduled
      take the results that are in (waiting at most half a second)
      every `learner.target_update_period` updates: refresh the target network
      every `run.publish_every_s`: push parameters to the actors
      every `run.summary_every_s`: drain actor stats, write summaries
      every `run.checkpoint_every_s`: checkpoint (model + each bundle's replay)
    final checkpoint

A learner's replay stream that ends (Reverb ends a stream whose sampler was
cancelled, as when a network fault cuts a closure short) would end the run:
the chief makes every worker's replay iterator again and goes on, once per
update at least (`TrainingLoop.restart_replay_streams`).

No bundle can stall it: the loop waits for no particular worker. Bundles are
probed for an answer in threads of their own (bookkeeping.BundleHealth); a
closure on a bundle silent for `run.bundle_timeout_s` stops counting against
the in-flight limit; replay checkpoints run in threads and skip silent
bundles; the model checkpoint is written by a process of its own
(checkpoint_writer.py), because in this process TensorFlow's checkpoint
saving and any newly traced function wait on every worker.
"""

from __future__ import annotations

import contextlib
import functools
import logging as std_logging
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Optional, Protocol

import reverb
import tensorflow as tf
from absl import logging

from gorila_tf import config as config_lib
from gorila_tf import errors
from gorila_tf.agent import dqn
from gorila_tf.agent import environments
from gorila_tf.agent import health as health_lib
from gorila_tf.agent import learner as learner_lib
from gorila_tf.runtime import bookkeeping
from gorila_tf.runtime import broadcast
from gorila_tf.runtime import builder as builder_lib
from gorila_tf.runtime import checkpoint_writer
from gorila_tf.runtime import checkpointing
from gorila_tf.runtime import cluster as cluster_lib
from gorila_tf.runtime import faults
from gorila_tf.runtime import lease as lease_lib
from gorila_tf.runtime import metrics
from gorila_tf.runtime import model as model_lib
from gorila_tf.runtime import ps
from gorila_tf.runtime import records
from gorila_tf.runtime import run_dir as run_dir_lib


@contextlib.contextmanager
def lost_ps_is_stuck(latest_checkpoint: Callable[[], Optional[str]]):
  """A ps lost inside becomes errors.Stuck: one line, and a restart.

  The coordinator recovers from a lost worker by itself; what reaches the
  chief's loop as UnavailableError is a lost ps, which ParameterServerStrategy
  cannot go on without (the launcher restarts the chief with it). A chaos run
  printed the coordinator's traceback there instead.
  """
  try:
    yield
  except tf.errors.UnavailableError as e:
    raise errors.Stuck(
        f'a parameter server is unreachable '
        f'({errors.error_line(e, prefer=GRPC_FAILURES)}): the chief restarts '
        f'and resumes from {latest_checkpoint()}') from None


# The line of a gRPC error that names the failure (TensorFlow's messages
# start with "Graph execution error:").
GRPC_FAILURES = ('UNAVAILABLE', 'failed to connect', 'Socket closed')


class ErrorsInOneLine(std_logging.Filter):
  """TensorFlow's log records that carry an error, said in one line.

  The coordinator logs each closure that failed on a lost ps as "Remote
  function on worker ... failed with %r:%s" and the whole error: TensorFlow's
  message holds the Python traceback of where each op was defined, so one
  killed ps put five tracebacks on the console (tests/launch/test_e2e.py).
  The record stays, with each error as its type and the line naming the
  failure, and the record's own sentences joined on one line.
  """

  def filter(self, record: std_logging.LogRecord) -> bool:
    args = record.args if isinstance(record.args, tuple) else ()
    if not isinstance(record.msg, str) or not any(
        isinstance(a, BaseException) for a in args):
      return True
    # TensorFlow's "%r:%s" of one error would say it twice.
    msg = record.msg.replace('%r:%s', '%s')
    if msg != record.msg:
      args = tuple(a for i, a in enumerate(args)
                   if not (i and isinstance(a, BaseException) and a is args[i - 1]))
    said = tuple(errors.error_line(a, prefer=GRPC_FAILURES)
                 if isinstance(a, BaseException) else a for a in args)
    try:
      text = msg % said
    except (TypeError, ValueError):
      return True  # not a format we know: left as it was
    record.msg = ' '.join(l.strip() for l in text.splitlines() if l.strip())
    record.args = ()
    return True


def unraisable_in_one_line(unraisable) -> None:
  """`sys.unraisablehook` for the chief: a TensorFlow error raised where
  Python cannot raise it, in one line.

  When a ps is lost, TensorFlow's eager executors of the failed closures are
  collected with their pending work failed, and `Executor.__del__` raises
  there: Python printed "Exception ignored in" and a traceback for each (five
  on a killed ps's console). Anything else goes to Python's own hook.
  """
  error = unraisable.exc_value
  if not isinstance(error, tf.errors.OpError):
    sys.__unraisablehook__(unraisable)
    return
  where = getattr(unraisable.object, '__qualname__', unraisable.object)
  logging.warning('ignored in %s: %s', where,
                  errors.error_line(error, prefer=GRPC_FAILURES))


def _start_chief_reverb(task: cluster_lib.Task,
                        shapes: list[tf.TensorShape]) -> reverb.Server:
  _, port = cluster_lib.split_address(task.chief_reverb_address())
  return reverb.Server(
      tables=[broadcast.make_variables_table(shapes),
              metrics.make_stats_table()],
      port=port)


class StoppedInStartUp(Exception):
  """The chief was told to stop before its start-up was done."""


def _go_on_unless(stop: Optional[threading.Event]) -> None:
  if stop is not None and stop.is_set():
    raise StoppedInStartUp()


class Chief:
  """Runs the training loop of one run directory.

  Public, for tests and benchmarks that drive learner closures themselves:
  `model` (the ShardedModel), `cluster_coordinator` (TensorFlow's
  ClusterCoordinator over the workers), `learner` (whose `train_steps` is the
  closure), `make_iterator()` (the per-worker replay iterator it takes), and
  the counters `updates` and `frames`.
  """

  def __init__(self, task: cluster_lib.Task, config: config_lib.GorilaConfig,
               run_dir: str, stop: Optional[threading.Event] = None,
               confirm_lease: Optional[Callable[[], bool]] = None):
    """`stop`, once set, ends the start-up between its steps
    (StoppedInStartUp): a Ctrl-C while the chief connects or builds.
    `confirm_lease` (lease.Lease.confirm) is asked before each checkpoint."""
    self._confirm_lease = confirm_lease
    self._task = task
    self._config = config
    self._run_dir = run_dir
    self._builder = builder_lib.DQNBuilder(config)
    self._signature = run_dir_lib.model_signature(config, self._builder.info,
                                                    task.num_ps)
    self._strategy = ps.make_strategy(task, config.launch.min_shard_bytes)
    self.cluster_coordinator = tf.distribute.coordinator.ClusterCoordinator(
        self._strategy)
    _go_on_unless(stop)
    self.model = model_lib.build_model(self._strategy, self._builder,
                                       task.num_workers)
    self.learner = self._builder.make_learner(
        self.model.q_net, self.model.target_net, self.model.optimizer,
        self.model.learner_state,
        replay_addresses=task.worker_reverb_addresses(),
        compute_device=learner_lib.worker_compute_device(
            tf.config.list_logical_devices()),
        num_learners=task.num_workers)
    self._log_learner_setup()
    _go_on_unless(stop)  # before the checkpoint writer's process starts
    self._open_checkpoints()
    self._read_progress = model_lib.make_progress_reader(self.model)
    self.learner.sync_target.get_concrete_function()
    self._reverb_server = _start_chief_reverb(task, self.model.q_net.shapes())
    self._reverb_client = reverb.Client(task.chief_reverb_address())
    self._publisher = broadcast.ParameterPublisher(
        task.chief_reverb_address(), self.model.q_net)
    self._summaries = metrics.SummaryWriter(run_dir)
    self._bundles = bookkeeping.BundleWatch(task.num_workers)
    self._health = bookkeeping.BundleHealth(task.worker_reverb_addresses(),
                                            config.run.bundle_timeout_s)
    self._replay_checkpoints = checkpointing.ReplayCheckpoints(
        task.worker_reverb_addresses())
    self._network_probe = self._builder.make_health_probe(
        self.model.q_net, self.model.optimizer)
    self._health_watch = health_lib.HealthWatch(config.health)
    self._health_figures = None  # the newest probe, until it is summarised
    self._plant_collapse = faults.planted_collapse(config.faults, self.model.q_net)
    self._iterator = None  # each worker's replay iterator, made by run()
    self._replay_streams_restarted = 0

  def _log_learner_setup(self) -> None:
    task, learner = self._task, self.learner
    logging.info('stale gradients: discarded when more than %d updates old '
                 '(%d learners)', learner.max_staleness, task.num_workers)
    if self._config.network.compute_dtype == 'auto':
      logging.info('network.compute_dtype=auto: %s on this CPU',
                   self.model.q_net.spec.compute_dtype)
    if not self._config.learner.fused_update and task.num_workers > 1:
      logging.warning('learner.fused_update=false: the written-out update rules '
                      'are not atomic; %d learners applying at once can lose '
                      'updates, and centered RMSProp\'s can make a parameter '
                      'NaN (stopping the run, exit 4); see '
                      'tests/runtime/test_concurrency.py', task.num_workers)
    if learner.compute_device:
      logging.info('learners compute on the workers\' %s', learner.compute_device)

  def _open_checkpoints(self) -> None:
    """Reads (restores) here; writes in the checkpoint writer's process."""
    c = self._config.run
    directory = os.path.join(self._run_dir, 'checkpoints')
    self._manager = tf.train.CheckpointManager(
        self.model.checkpoint(), directory, max_to_keep=c.keep_checkpoints)
    self._writer = checkpoint_writer.CheckpointWriter(
        directory, c.keep_checkpoints, functools.partial(
            model_lib.build_plain_model, self._builder, self._task.num_workers,
            self.model.part_shapes()))
    self._read_state = model_lib.make_state_reader(self.model)
    self._iterations_index = next(
        i for i, v in enumerate(self.model.state_variables())
        if v is self.model.optimizer.iterations)

  def make_iterator(self):
    """Each worker's replay iterator, to pass to `learner.train_steps`."""
    dataset_fn = model_lib.make_dataset_fn(self._task, self._builder)
    return iter(self.cluster_coordinator.create_per_worker_dataset(dataset_fn))

  @property
  def updates(self) -> int:
    return int(self._read_progress()['updates'])

  def restore(self) -> None:
    checkpoint = self._manager.checkpoint
    path = checkpointing.restore_newest_readable(self._manager, checkpoint)
    m = self.model
    if path:
      gap = time.time() - float(m.saved_at.numpy())
      m.resumes.assign_add(1)
      logging.info('resumed from %s at %d updates, %d frames (saved %.1f s '
                   'ago; resume %d)', path, self.updates, self.frames, gap,
                   int(m.resumes.numpy()))
      self._resume_gap_s = gap
    else:
      self.learner.sync_target()
      logging.info('initialised a new run in %s', self._run_dir)
      self._resume_gap_s = None

  def latest_checkpoint(self) -> str | None:
    return self._writer.latest_checkpoint or self._manager.latest_checkpoint

  def save(self) -> str:
    """Checkpoints the model (if it is finite) and every answering bundle's replay."""
    if self._confirm_lease is not None and not self._confirm_lease():
      raise errors.LeaseHeld(f'run directory {self._run_dir} is another '
                             "chief's now: not checkpointed")
    self.model.saved_at.assign(time.time())
    values = [t.numpy() for t in self._read_state()]
    updates = int(values[self._iterations_index])
    if not checkpointing.all_finite(values[:len(self.model.q_net.params)]):
      raise errors.NumericalError(
          f'non-finite parameters at update {updates}; not checkpointed, '
          f'the last good checkpoint {self.latest_checkpoint()} is kept')
    try:
      path = self._writer.save(updates, values)
      run_dir_lib.record_signature(self._run_dir, self._signature)
    except (OSError, errors.CheckpointNotWritten) as e:
      if errors.is_no_space(e):
        raise errors.DiskFull(f'no space left writing checkpoint {updates} '
                              f'({getattr(e, "strerror", None) or e})') from None
      raise errors.CheckpointNotWritten(
          f'cannot write a checkpoint in {self._run_dir}: '
          f'{getattr(e, "strerror", None) or e}; the last good checkpoint '
          f'{self.latest_checkpoint()} is kept') from e
    asked, skipped = self._replay_checkpoints.request(self._health.responsive)
    for bundle in skipped:
      self._health.replay_checkpoints_skipped[bundle] += 1
    logging.info('checkpoint %s (%d updates, %d frames; replay of %d/%d bundles'
                 '%s)', path, updates, self.frames, len(asked),
                 self._task.num_workers,
                 f'; skipped {skipped}' if skipped else '')
    return path

  @property
  def frames(self) -> int:
    return int(self.model.frames.numpy())

  def budget_spent(self) -> bool:
    return self.frames >= self._config.run.max_frames

  def run(self, stop: threading.Event) -> None:
    """Trains until `run.max_frames` or `stop`, then checkpoints."""
    c = self._config
    self.restore()
    self._summaries.text('config', '```\n' + config_lib.to_json(c) + '\n```',
                         self.frames)
    self._summaries.hparams(bookkeeping.flatten(config_lib.to_dict(c)))
    self.publish()
    self._iterator = self.make_iterator()
    try:
      with lost_ps_is_stuck(self.latest_checkpoint):
        TrainingLoop(c, self, float(self.model.wall_time_s.numpy())).run(stop)
    except errors.DiskFull as e:
      raise errors.DiskFull(checkpointing.after_disk_full(
          str(e), self._run_dir, self.latest_checkpoint(),
          c.run.min_free_disk_mb)) from None
    self._replay_checkpoints.wait(timeout_s=c.run.bundle_timeout_s)
    logging.info('%s: %d frames, %d updates',
                 'frame budget reached' if self.budget_spent() else 'stopped',
                 self.frames, self.updates)

  # What TrainingLoop drives (its `Cluster`).

  def schedule(self):
    """One learner closure on whichever worker is free; its RemoteValue."""
    return self.cluster_coordinator.schedule(self.learner.train_steps,
                                             args=(self._iterator,))

  def sync_target(self) -> None:
    self.learner.sync_target()

  def restart_replay_streams(self) -> None:
    """Every worker's replay iterator made again, after one ended.

    The coordinator holds the error that ended it until it is raised once
    more (it would fail the next schedule): taken here first.
    """
    try:
      self.cluster_coordinator.done()
    except (tf.errors.OutOfRangeError, tf.errors.CancelledError):
      pass
    self._iterator = self.make_iterator()
    self._replay_streams_restarted += 1

  def publish(self) -> None:
    self._publisher.publish(self.updates, self.frames)

  def probe_bundles(self) -> None:
    self._health.check()

  def set_wall_time(self, seconds: float) -> None:
    self.model.wall_time_s.assign(seconds)

  def write_summaries(self, window: bookkeeping.SummaryWindow) -> None:
    self._write_summaries(window)

  def check_finite(self, result: dict) -> None:
    if int(result['nonfinite']):
      raise errors.NumericalError(
          f'non-finite loss or gradient near update {self.updates}: training '
          f'stopped, nothing was applied from it, and the last good checkpoint '
          f'{self.latest_checkpoint()} is kept')

  def plant_faults(self, updates: int) -> None:
    """Test-only fault injection (the `faults` section)."""
    if self._plant_collapse and updates >= self._config.faults.kill_units_at_update:
      logging.warning('faults: killing every hidden unit at update %d '
                      '(faults.kill_units_at_update)', updates)
      self._plant_collapse()
      self._plant_collapse = None

  def check_network(self, updates: int,
                     window: bookkeeping.SummaryWindow) -> None:
    """Probes the online network (health.py); stops the run on a collapse
    when health.stop_on_collapse says so."""
    figures = self._network_probe.measure(updates)
    self._health_figures = figures
    verdict = self._health_watch.judge(figures)
    for line in verdict.warnings:
      logging.warning('%s', line)
    if verdict.collapsed and self._config.health.stop_on_collapse:
      self._write_summaries(window)  # with the probe that found it
      raise errors.Collapsed(
          f'{health_lib.describe_collapse(figures, self._config.health)}: '
          'a collapsed network does not recover, so the run stops '
          '(health.stop_on_collapse=false trains on); the checkpoints are kept '
          f'as they were, the newest {self.latest_checkpoint()}')
    if verdict.collapse:
      logging.warning('%s; training goes on (health.stop_on_collapse=false)',
                      verdict.collapse)

  def count_actor_stats(self) -> metrics.ActorStats:
    """Drains the actors' records into the run's counters."""
    drained = metrics.drain_stats(self._reverb_client)
    self._bundles.saw(drained.incarnations)
    m = self.model
    frames_per_step = self._builder.info.frames_per_step
    m.env_steps.assign_add(drained.env_steps)
    m.frames.assign_add(drained.env_steps * frames_per_step)
    m.episodes.assign_add(drained.episodes)
    if drained.steps_by_bundle:
      bundles, steps = zip(*drained.steps_by_bundle.items())
      m.frames_by_bundle.scatter_add(tf.IndexedSlices(
          tf.constant(steps, tf.int64) * frames_per_step,
          tf.constant(bundles, tf.int32)))
    return drained

  def _write_summaries(self, window: bookkeeping.SummaryWindow) -> None:
    t = records.TAGS
    progress = {k: v.numpy() for k, v in self._read_progress().items()}
    frames, updates = self.frames, int(progress['updates'])
    a = self._config.actor
    stats = window.actors
    staleness = [updates - v for v in stats.param_versions]
    values = {
        t['episodic_return']: metrics.mean_or_nan(stats.return_sum, stats.episodes),
        t['episode_length']: metrics.mean_or_nan(stats.length_sum, stats.episodes),
        t['frames_per_second']: window.frame_meter.rate(frames),
        t['updates_per_second']: window.update_meter.rate(updates),
        t['td_loss']: window.mean('loss'),
        t['mean_q']: window.mean('mean_q'),
        t['gradient_staleness']: window.mean('staleness'),
        t['epsilon']: dqn.linear_epsilon(frames, a.epsilon_start, a.epsilon_end,
                                         a.epsilon_decay_frames),
        t['param_staleness']: metrics.mean_or_nan(sum(staleness), len(staleness)),
        t['updates']: updates,
        t['frames']: frames,
        t['applied']: int(progress['applied']),
        t['discarded_stale']: int(progress['discarded_stale']),
        t['discarded_outlier']: int(progress['discarded_outlier']),
    }
    values['cluster/resumes'] = int(self.model.resumes.numpy())
    if self._resume_gap_s is not None:
      values['cluster/resume_gap_s'] = self._resume_gap_s
      self._resume_gap_s = None
    values.update(self._bundles.summary())
    values.update(self._health.summary())  # with replay/size
    values['cluster/closures_overdue'] = window.overdue
    values['cluster/replay_streams_restarted'] = self._replay_streams_restarted
    values.update(self._health_scalars(window))
    values.update(metrics.percentiles('learners/gradient_staleness',
                                      window.samples['staleness_by_step']))
    for i, n in enumerate(self.model.frames_by_bundle.numpy()):
      values[f'bundles/{i}/frames'] = int(n)
    for i, n in enumerate(progress['updates_by_worker']):
      values[f'bundles/{i}/updates'] = int(n)
    self._summaries.scalars(frames, values,
                            episodes=int(self.model.episodes.numpy()),
                            wall_time_s=float(self.model.wall_time_s.numpy()))
    self._summaries.histograms(frames, {
        'learners/q_values': window.samples['q_values'],
        'learners/gradient_staleness_hist': window.samples['staleness_by_step'],
        'actors/param_staleness_hist': staleness})
    logging.info('frames %d updates %d return %s loss %.4f fps %.0f ups %.1f '
                 'discarded %d stale %d outlier', frames, updates,
                 # '-' when no episode ended in the window, as the progress line
                 f"{values[t['episodic_return']]:.2f}" if stats.episodes else '-',
                 values[t['td_loss']],
                 values[t['frames_per_second']], values[t['updates_per_second']],
                 values[t['discarded_stale']], values[t['discarded_outlier']])

  def _health_scalars(self, window: bookkeeping.SummaryWindow) -> dict:
    """The newest network probe (once) and the learners' gradient norms."""
    values = {}
    if self._health_figures is not None:
      values.update(self._health_figures.scalars())
      self._health_figures = None
    for key in window.learner:
      if key.startswith('gradient_norm/'):
        layer = key.split('/', 1)[1]
        values[f'health/{layer}/gradient_norm'] = window.mean(key)
    return values

  def close(self) -> None:
    self._health.close()
    self._writer.close()
    self._summaries.close()
    self._reverb_server.stop()


class Cluster(Protocol):
  """What the training loop drives: the chief (or a fake, in tests)."""

  updates: int  # applied updates, read from the ps
  frames: int  # frames the actors reported

  def budget_spent(self) -> bool: ...
  def schedule(self) -> Any: ...  # a learner closure's RemoteValue (.fetch())
  def restart_replay_streams(self) -> None: ...  # after one ended
  def check_finite(self, result: dict) -> None: ...  # raises NumericalError
  def sync_target(self) -> None: ...
  def plant_faults(self, updates: int) -> None: ...
  def check_network(self, updates: int, window) -> None: ...  # may raise Collapsed
  def probe_bundles(self) -> None: ...
  def count_actor_stats(self) -> metrics.ActorStats: ...
  def set_wall_time(self, seconds: float) -> None: ...
  def publish(self) -> None: ...
  def write_summaries(self, window) -> None: ...
  def save(self) -> str: ...


class TrainingLoop:
  """The chief's loop (module docstring), apart from what it drives."""

  def __init__(self, config: config_lib.GorilaConfig, cluster: Cluster,
               wall_time_before_s: float = 0.0,
               now: Callable[[], float] = time.monotonic):
    self._config, self._cluster = config, cluster
    self._clock = bookkeeping.Clock(wall_time_before_s, now)

  def run(self, stop: threading.Event) -> None:
    """Until the frame budget or `stop`; then the last summary and checkpoint."""
    c, cluster = self._config, self._cluster
    in_flight = bookkeeping.InFlight(overdue_s=c.run.bundle_timeout_s)
    window = bookkeeping.SummaryWindow(cluster.frames, cluster.updates)
    at_target = started_at = cluster.updates
    at_probe = cluster.updates - c.health.every_updates  # probe at once
    restarted_at = None  # updates at the last restart of the replay streams
    while not cluster.budget_spent() and not stop.is_set():
      try:
        while in_flight.waiting() < c.run.max_closures_in_flight:
          in_flight.add(cluster.schedule())
        for result in in_flight.wait_any(timeout_s=0.5):
          window.add_learner(result)
          cluster.check_finite(result)
      except tf.errors.OutOfRangeError:
        restarted_at = self.restart_replay_streams(restarted_at)
        in_flight = bookkeeping.InFlight(overdue_s=c.run.bundle_timeout_s)
      updates = cluster.updates
      if updates - at_target >= c.learner.target_update_period:
        cluster.sync_target()
        at_target = updates
      cluster.plant_faults(updates)
      if updates - at_probe >= c.health.every_updates:
        cluster.check_network(updates, window)
        at_probe = updates
      cluster.probe_bundles()
      window.overdue = in_flight.overdue()
      window.actors.merge(cluster.count_actor_stats())
      cluster.set_wall_time(self._clock.wall_time_s())
      self._periodic_work(window)
    # Closures of silent bundles are left behind: their results would only
    # be discarded as stale.
    try:
      for result in in_flight.wait_all(timeout_s=c.run.bundle_timeout_s):
        window.add_learner(result)
    except tf.errors.OutOfRangeError:
      pass  # a stream cut on the way out: those results are not summarised
    cluster.write_summaries(window)
    if cluster.updates == started_at and not cluster.budget_spent():
      # Stopped before any update (during start-up): the checkpoint on disk,
      # if any, already holds this state.
      logging.info('stopped before training began: nothing new to save')
      return
    cluster.save()

  def restart_replay_streams(self, restarted_at: int | None) -> int:
    """A learner's endless replay stream ended: every worker's is made again.

    The coordinator cancelled every closure in flight when it took the error,
    so the loop starts a new count of them. Streams that end again before
    one more update was applied are not a cut-off stream but a replay that
    cannot serve: errors.Stuck (the run restarts from its checkpoint).
    Returns the updates at this restart.
    """
    updates = self._cluster.updates
    if restarted_at is not None and updates == restarted_at:
      raise errors.Stuck(
          f'the learners\' replay streams ended again at update {updates}, '
          'with no update since they were made again: stopping so that the '
          'run restarts from its checkpoint')
    logging.warning('a learner\'s replay stream ended at update %d (cut by a '
                    'network fault): every worker\'s replay stream is made '
                    'again and training goes on', updates)
    self._cluster.restart_replay_streams()
    return updates

  def _periodic_work(self, window: bookkeeping.SummaryWindow) -> None:
    c, cluster = self._config.run, self._cluster
    if self._clock.due('publish', c.publish_every_s):
      cluster.publish()
    if self._clock.due('summary', c.summary_every_s):
      cluster.write_summaries(window)
      window.reset()
    if self._clock.due('checkpoint', c.checkpoint_every_s):
      cluster.save()


def preflight(task: cluster_lib.Task, config: config_lib.GorilaConfig,
              run_dir: str) -> lease_lib.Lease:
  """Every check that can refuse the run; returns the run directory's lease.

  The lease is the first thing written: a second chief on a live run
  directory is refused here (errors.LeaseHeld, exit status 2) having written
  nothing. It is released again if a later check refuses the run.
  """
  info = environments.env_info(config.env)
  run_dir_lib.check_compatible(
      run_dir, run_dir_lib.model_signature(config, info, task.num_ps))
  checkpointing.check_some_readable(run_dir)
  cluster_lib.check_port_free(task.address, 'chief:0')
  cluster_lib.check_port_free(task.chief_reverb_address(),
                              'the parameter tables of chief:0')
  lease = lease_lib.hold(run_dir, config.run.lease_timeout_s)
  try:
    cluster_lib.wait_for_tasks(task, ('ps', 'worker'),
                               config.run.connect_timeout_s)
    run_dir_lib.check_writable(run_dir, config.run.min_free_disk_mb)
  except BaseException:
    lease.release()
    raise
  return lease


def run(task: cluster_lib.Task, config: config_lib.GorilaConfig,
        run_dir: str) -> None:
  """The chief role. SIGTERM/SIGINT stop it after a last checkpoint."""
  # Until training starts, SIGTERM interrupts as SIGINT does, and the lease
  # is released on the way out instead of being left for others to time out.
  signal.signal(signal.SIGTERM, signal.default_int_handler)
  # A lost ps's errors in one line each (they were tracebacks on the console).
  tf.get_logger().addFilter(ErrorsInOneLine())
  sys.unraisablehook = unraisable_in_one_line
  lease = preflight(task, config, run_dir)
  try:
    run_dir_lib.prepare(run_dir, config, config.run.min_free_disk_mb)
    stop = threading.Event()

    def on_signal(signum, frame):
      del frame
      logging.info('chief: signal %d, checkpointing and stopping', signum)
      stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    target = config.run.stop_at_eval_return
    if run_dir_lib.plays_at(run_dir, target):
      logging.info('the agent of %s already scored run.stop_at_eval_return=%g '
                   '(%s): nothing to train', run_dir, target, run_dir_lib.PLAYS_FILE)
      run_dir_lib.mark_done(run_dir)
      return
    plays = PlaysWatch(run_dir, target, stop)
    try:
      chief = Chief(task, config, run_dir, stop, confirm_lease=lease.confirm)
    except StoppedInStartUp:
      plays.close()
      # Nothing was written: the run directory is as the last launch left it.
      logging.info('stopped during start-up, before training began: nothing '
                   'new to save')
      return
    try:
      chief.run(stop)
    finally:
      plays.close()
      chief.close()
    if (chief.budget_spent() or plays.reached) and lease.confirm():
      run_dir_lib.mark_done(run_dir)
  finally:
    lease.release()  # after the last write, DONE included


class PlaysWatch:
  """Stops training once the evaluator recorded a score at the target
  (run.stop_at_eval_return): it exported that checkpoint's policy and wrote
  run_dir.PLAYS_FILE. Polls the file in a thread of its own."""

  POLL_S = 2.0

  def __init__(self, run_dir: str, target: float | None,
               stop: threading.Event):
    self.reached = False
    self._closed = threading.Event()
    if target is None:
      return
    self._run_dir, self._target, self._stop = run_dir, target, stop
    threading.Thread(target=self._watch, daemon=True,
                     name='plays-watch').start()

  def _watch(self) -> None:
    while not self._closed.wait(self.POLL_S):
      row = run_dir_lib.plays_at(self._run_dir, self._target)
      if row is not None:
        logging.info('the agent plays: evaluation %.1f of %s reached '
                     'run.stop_at_eval_return=%g; checkpointing and stopping',
                     row['mean'], row.get('checkpoint'), self._target)
        self.reached = True
        self._stop.set()
        return

  def close(self) -> None:
    self._closed.set()
