"""The chief: builds the sharded model, drives the learners, keeps the books.

The chief is the only process that sees the whole run. Its loop:

    restore the latest checkpoint (or initialise)
    publish parameters so actors can start
    until the frame budget is spent:
      keep `run.max_closures_in_flight` learner closures scheduled
      every `learner.target_update_period` updates: refresh the target network
      every `run.publish_every_s`: push parameters to the actors
      every `run.summary_every_s`: drain actor stats, write summaries
      every `run.checkpoint_every_s`: checkpoint
    final checkpoint
"""

from __future__ import annotations

import collections
from concurrent import futures
import dataclasses
import os
import signal
import threading
import time

import reverb
import tensorflow as tf
from absl import logging

from gorila_tf import broadcast
from gorila_tf import checkpointing
from gorila_tf import cluster as cluster_lib
from gorila_tf import config as config_lib
from gorila_tf import dqn
from gorila_tf import environments
from gorila_tf import learner as learner_lib
from gorila_tf import metrics
from gorila_tf import networks
from gorila_tf import optimizers
from gorila_tf import ps
from gorila_tf import replay
from gorila_tf import run_dir as run_dir_lib


@dataclasses.dataclass
class _Model:
  """The variables that live on the ps tasks, plus chief-side counters."""

  q_net: networks.QNetwork
  target_net: networks.QNetwork
  optimizer: optimizers.Optimizer
  learner_state: learner_lib.LearnerState
  frames: tf.Variable  # frames reported by actors
  env_steps: tf.Variable
  episodes: tf.Variable
  wall_time_s: tf.Variable  # training time summed over restarts
  frames_by_bundle: tf.Variable  # [num_workers]
  resumes: tf.Variable  # times the run was resumed from a checkpoint
  saved_at: tf.Variable  # unix time of the checkpoint's save


def _build_model(strategy, config: config_lib.GorilaConfig,
                 info: environments.EnvInfo, num_workers: int) -> _Model:
  with strategy.scope():
    q_net = networks.make_q_network(config.network, info, seed=config.run.seed)
    target_net = networks.make_q_network(config.network, info, seed=config.run.seed)
    # Slots next to each (part of a) variable; created here because
    # closures on workers cannot create variables.
    optimizer = optimizers.Optimizer(config.learner, q_net.parts())
    state = learner_lib.LearnerState.create(num_workers)
  counter = lambda: tf.Variable(0, dtype=tf.int64, trainable=False)
  seconds = lambda: tf.Variable(0.0, dtype=tf.float64, trainable=False)
  return _Model(q_net, target_net, optimizer, state, counter(), counter(),
                counter(), seconds(),
                tf.Variable(tf.zeros([num_workers], tf.int64), trainable=False),
                counter(), seconds())


def _checkpoint(model: _Model) -> tf.train.Checkpoint:
  return tf.train.Checkpoint(
      q_network=model.q_net, target_network=model.target_net,
      optimizer=model.optimizer, frames=model.frames, env_steps=model.env_steps,
      episodes=model.episodes, wall_time_s=model.wall_time_s,
      frames_by_bundle=model.frames_by_bundle, resumes=model.resumes,
      saved_at=model.saved_at, **model.learner_state.checkpoint_items())


def _per_worker_replay(task: cluster_lib.Task, config: config_lib.GorilaConfig):
  """(addresses, bundle indices) a worker's learner samples, chosen at run time."""
  addresses = tf.constant(task.worker_reverb_addresses())
  if config.replay.mode == 'global':
    return addresses, tf.range(task.num_workers)
  # Local (bundled) replay: the dataset function is traced once for all
  # workers; the worker index is resolved when it runs on each worker.
  index = tf.distribute.coordinator.experimental_get_current_worker_index()
  index = tf.reshape(tf.cast(index, tf.int32), [1])
  return tf.gather(addresses, index), index


def _start_chief_reverb(task: cluster_lib.Task,
                        shapes: list[tf.TensorShape]) -> reverb.Server:
  _, port = cluster_lib.split_address(task.chief_reverb_address())
  return reverb.Server(
      tables=[broadcast.make_variables_table(shapes),
              metrics.make_stats_table()],
      port=port)


class Chief:
  """Runs the training loop of one run directory."""

  def __init__(self, task: cluster_lib.Task, config: config_lib.GorilaConfig,
               run_dir: str):
    self._task = task
    self._config = config
    self._run_dir = run_dir
    self._info = environments.env_info(config.env)
    self._signature = checkpointing.model_signature(config, self._info,
                                                    task.num_ps)
    self._strategy = ps.make_strategy(task,
                                                    config.launch.min_shard_bytes)
    self._coordinator = tf.distribute.coordinator.ClusterCoordinator(self._strategy)
    self._model = _build_model(self._strategy, config, self._info,
                               task.num_workers)
    self._learner = learner_lib.Learner(
        self._model.q_net, self._model.target_net, self._model.optimizer,
        self._model.learner_state, config.learner, config.replay,
        task.worker_reverb_addresses(), config.faults)
    self._manager = tf.train.CheckpointManager(
        _checkpoint(self._model), os.path.join(run_dir, 'checkpoints'),
        max_to_keep=config.run.keep_checkpoints)
    shapes = self._model.q_net.shapes()
    self._reverb_server = _start_chief_reverb(task, shapes)
    self._reverb_client = reverb.Client(task.chief_reverb_address())
    self._publisher = broadcast.ParameterPublisher(
        task.chief_reverb_address(), self._model.q_net)
    self._summaries = metrics.SummaryWriter(run_dir)
    self._bundles = _BundleWatch(task.num_workers)

  def _make_iterator(self):
    config, info, task = self._config, self._info, self._task

    def dataset_fn():
      c, faults = config.learner, config.faults
      worker = tf.distribute.coordinator.experimental_get_current_worker_index()
      delay_ms = tf.where(worker == faults.slow_worker, faults.slow_ms, 0)
      addresses, indices = _per_worker_replay(task, config)
      return replay.make_dataset(addresses, info, c.batch_size, c.n_step,
                                 delay_ms, server_indices=indices)

    return iter(self._coordinator.create_per_worker_dataset(dataset_fn))

  @property
  def updates(self) -> int:
    return int(self._model.optimizer.iterations.numpy())

  def restore(self) -> None:
    checkpoint = self._manager.checkpoint
    path = checkpointing.restore_newest_readable(self._manager, checkpoint)
    m = self._model
    if path:
      gap = time.time() - float(m.saved_at.numpy())
      m.resumes.assign_add(1)
      logging.info('resumed from %s at %d updates, %d frames (saved %.1f s '
                   'ago; resume %d)', path, self.updates, self.frames, gap,
                   int(m.resumes.numpy()))
      self._resume_gap_s = gap
    else:
      self._learner.sync_target()
      logging.info('initialised a new run in %s', self._run_dir)
      self._resume_gap_s = None

  def save(self) -> str:
    """Checkpoints the model (if it is finite) and every bundle's replay."""
    if not bool(checkpointing.all_finite(self._model.q_net.read())):
      raise config_lib.NumericalError(
          f'non-finite parameters at update {self.updates}; not checkpointed, '
          f'the last good checkpoint {self._manager.latest_checkpoint} is kept')
    self._model.saved_at.assign(time.time())
    try:
      path = self._manager.save(checkpoint_number=self.updates)
      checkpointing.record_signature(self._run_dir, self._signature)
    except (OSError, tf.errors.OpError) as e:
      raise config_lib.ConfigError(
          f'cannot write a checkpoint in {self._run_dir}: '
          f'{getattr(e, "strerror", None) or getattr(e, "message", e)}; the '
          f'last good checkpoint {self._manager.latest_checkpoint} is kept') from e
    replays = checkpointing.checkpoint_replay(self._task.worker_reverb_addresses())
    logging.info('checkpoint %s (%d updates, %d frames; replay of %d/%d bundles)',
                 path, self.updates, self.frames, replays, self._task.num_workers)
    return path

  def _replay_size(self) -> int:
    total = 0
    for address in self._task.worker_reverb_addresses():
      try:
        info = reverb.Client(address).server_info(timeout=2)
        total += info[replay.REPLAY_TABLE].current_size
      except (reverb.errors.ReverbError, RuntimeError, tf.errors.OpError,
              KeyError):
        pass  # a bundle restarting: its replay is counted when it is back
    return total

  @property
  def frames(self) -> int:
    return int(self._model.frames.numpy())

  def budget_spent(self) -> bool:
    return self.frames >= self._config.run.max_frames

  def run(self, stop: threading.Event) -> None:
    """Trains until `run.max_frames` or `stop`, then checkpoints."""
    c = self._config
    self.restore()
    self._summaries.text('config', '```\n' + config_lib.to_json(c) + '\n```',
                         self.frames)
    self._summaries.hparams(_flatten(config_lib.to_dict(c)))
    self._publisher.publish(self.updates, self.frames)
    iterator = self._make_iterator()
    in_flight = _InFlight(c.run.max_closures_in_flight)
    window = _SummaryWindow(self.frames, self.updates)
    clock = _Clock(float(self._model.wall_time_s.numpy()))
    updates_at_target = self.updates
    while not self.budget_spent() and not stop.is_set():
      while len(in_flight) < c.run.max_closures_in_flight:
        in_flight.add(self._coordinator.schedule(self._learner.train_steps,
                                                 args=(iterator,)))
      for result in in_flight.wait_any():
        window.add_learner(result)
        self._check_finite(result)
      if self.updates - updates_at_target >= c.learner.target_update_period:
        self._learner.sync_target()
        updates_at_target = self.updates
      window.actors.merge(self._count_actor_stats())
      self._model.wall_time_s.assign(clock.wall_time_s())
      self._periodic_work(clock, window)
    self._coordinator.join()
    for result in in_flight.wait_all():
      window.add_learner(result)
    self._write_summaries(window)
    self.save()
    logging.info('%s: %d frames, %d updates',
                 'frame budget reached' if self.budget_spent() else 'stopped',
                 self.frames, self.updates)

  def _check_finite(self, result: dict) -> None:
    if int(result['nonfinite']):
      raise config_lib.NumericalError(
          f'non-finite loss or gradient near update {self.updates}: training '
          f'stopped, nothing was applied from it, and the last good checkpoint '
          f'{self._manager.latest_checkpoint} is kept')

  def _periodic_work(self, clock: '_Clock', window: '_SummaryWindow') -> None:
    c = self._config.run
    if clock.due('publish', c.publish_every_s):
      self._publisher.publish(self.updates, self.frames)
    if clock.due('summary', c.summary_every_s):
      self._write_summaries(window)
      window.reset()
    if clock.due('checkpoint', c.checkpoint_every_s):
      self.save()

  def _count_actor_stats(self) -> metrics.ActorStats:
    """Drains the actors' records into the run's counters."""
    drained = metrics.drain_stats(self._reverb_client)
    self._bundles.saw(drained.incarnations)
    m = self._model
    frames_per_step = self._info.frames_per_step
    m.env_steps.assign_add(drained.env_steps)
    m.frames.assign_add(drained.env_steps * frames_per_step)
    m.episodes.assign_add(drained.episodes)
    if drained.steps_by_bundle:
      bundles, steps = zip(*drained.steps_by_bundle.items())
      m.frames_by_bundle.scatter_add(tf.IndexedSlices(
          tf.constant(steps, tf.int64) * frames_per_step,
          tf.constant(bundles, tf.int32)))
    return drained

  def _write_summaries(self, window: '_SummaryWindow') -> None:
    t = metrics.TAGS
    frames, updates = self.frames, self.updates
    a = self._config.actor
    stats = window.actors
    staleness = [updates - v for v in stats.param_versions]
    state = self._model.learner_state
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
        t['replay_size']: self._replay_size(),
        t['param_staleness']: metrics.mean_or_nan(sum(staleness), len(staleness)),
        t['updates']: updates,
        t['frames']: frames,
        t['applied']: int(state.applied.numpy()),
        t['discarded_stale']: int(state.discarded_stale.numpy()),
        t['discarded_outlier']: int(state.discarded_outlier.numpy()),
    }
    values['cluster/resumes'] = int(self._model.resumes.numpy())
    if self._resume_gap_s is not None:
      values['cluster/resume_gap_s'] = self._resume_gap_s
      self._resume_gap_s = None
    values.update(self._bundles.summary())
    for i, n in enumerate(self._model.frames_by_bundle.numpy()):
      values[f'bundles/{i}/frames'] = int(n)
    for i, n in enumerate(state.updates_by_worker.numpy()):
      values[f'bundles/{i}/updates'] = int(n)
    self._summaries.scalars(frames, values, episodes=int(self._model.episodes.numpy()),
                            wall_time_s=float(self._model.wall_time_s.numpy()))
    self._summaries.histograms(frames, {
        'learners/q_values': window.samples['q_values'],
        'learners/gradient_staleness_hist': window.samples['staleness_by_step'],
        'actors/param_staleness_hist': staleness})
    logging.info('frames %d updates %d return %.2f loss %.4f fps %.0f ups %.1f '
                 'discarded %d stale %d outlier', frames, updates,
                 values[t['episodic_return']], values[t['td_loss']],
                 values[t['frames_per_second']], values[t['updates_per_second']],
                 values[t['discarded_stale']], values[t['discarded_outlier']])

  def close(self) -> None:
    self._summaries.close()
    self._reverb_server.stop()


def _flatten(tree: dict, prefix: str = '') -> dict:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


class _BundleWatch:
  """Notices bundle restarts from the incarnation in their stats records."""

  def __init__(self, num_bundles: int):
    self._incarnation: dict[int, int] = {}
    self._last_seen: dict[int, float] = {}
    self.restarts = [0] * num_bundles
    self.last_downtime_s = [0.0] * num_bundles

  def saw(self, incarnations: dict[int, int]) -> None:
    now = time.monotonic()
    for bundle, incarnation in incarnations.items():
      known = self._incarnation.get(bundle)
      if known is not None and incarnation > known:
        downtime = now - self._last_seen[bundle]
        self.restarts[bundle] += 1
        self.last_downtime_s[bundle] = downtime
        logging.warning('bundle %d restarted: %.1f s without its reports', bundle,
                        downtime)
      self._incarnation[bundle] = max(incarnation, known or 0)
      self._last_seen[bundle] = now

  def summary(self) -> dict[str, float]:
    values = {}
    for i, (restarts, downtime) in enumerate(zip(self.restarts,
                                                 self.last_downtime_s)):
      values[f'bundles/{i}/restarts'] = restarts
      values[f'bundles/{i}/last_downtime_s'] = downtime
    return values


class _InFlight:
  """Scheduled closures whose results are not in yet.

  Waits for whichever finishes first, so that one slow worker does not hold
  back the scheduling of closures for the others (RemoteValue has no
  non-blocking test, so each fetch waits in a thread of its own).
  """

  def __init__(self, max_in_flight: int):
    self._pool = futures.ThreadPoolExecutor(max_in_flight,
                                            thread_name_prefix='fetch')
    self._pending: set[futures.Future] = set()

  def __len__(self) -> int:
    return len(self._pending)

  def add(self, remote_value) -> None:
    self._pending.add(self._pool.submit(remote_value.fetch))

  def wait_any(self) -> list:
    done, self._pending = futures.wait(self._pending,
                                       return_when=futures.FIRST_COMPLETED)
    return [f.result() for f in done]

  def wait_all(self) -> list:
    done, self._pending = futures.wait(self._pending), set()
    return [f.result() for f in done.done]


class _Clock:
  """Wall time summed over restarts, and 'is it time for X again?'."""

  def __init__(self, wall_time_before_s: float):
    self._start = time.monotonic()
    self._before = wall_time_before_s
    self._last: dict[str, float] = {}

  def wall_time_s(self) -> float:
    return self._before + time.monotonic() - self._start

  def due(self, what: str, every_s: float) -> bool:
    now = time.monotonic()
    if now - self._last.setdefault(what, self._start) >= every_s:
      self._last[what] = now
      return True
    return False


class _SummaryWindow:
  """What happened since the last summary."""

  def __init__(self, frames: int, updates: int):
    self.frame_meter = metrics.RateMeter(frames)
    self.update_meter = metrics.RateMeter(updates)
    self.reset()

  def reset(self) -> None:
    self.actors = metrics.ActorStats()
    self.learner: dict[str, list[float]] = collections.defaultdict(list)
    self.samples: dict[str, list[float]] = collections.defaultdict(list)

  def add_learner(self, result: dict) -> None:
    for key, value in result.items():
      if getattr(value, 'ndim', 0):
        self.samples[key].extend(float(v) for v in value)
      else:
        self.learner[key].append(float(value))

  def mean(self, key: str) -> float:
    values = self.learner[key]
    return metrics.mean_or_nan(sum(values), len(values))


def preflight(task: cluster_lib.Task, config: config_lib.GorilaConfig,
              run_dir: str) -> None:
  """Every check that can refuse the run, before anything is written."""
  info = environments.env_info(config.env)
  checkpointing.check_compatible(
      run_dir, checkpointing.model_signature(config, info, task.num_ps))
  cluster_lib.check_port_free(task.address, 'chief:0')
  cluster_lib.check_port_free(task.chief_reverb_address(),
                              'the parameter tables of chief:0')
  cluster_lib.wait_for_tasks(task, ('ps', 'worker'), config.run.connect_timeout_s)
  run_dir_lib.check_writable(run_dir, config.run.min_free_disk_mb)


def run(task: cluster_lib.Task, config: config_lib.GorilaConfig,
        run_dir: str) -> None:
  """The chief role. SIGTERM/SIGINT stop it after a last checkpoint."""
  preflight(task, config, run_dir)
  run_dir_lib.prepare(run_dir, config, config.run.min_free_disk_mb)
  stop = threading.Event()

  def on_signal(signum, frame):
    del frame
    logging.info('chief: signal %d, checkpointing and stopping', signum)
    stop.set()

  signal.signal(signal.SIGTERM, on_signal)
  signal.signal(signal.SIGINT, on_signal)
  chief = Chief(task, config, run_dir)
  try:
    chief.run(stop)
  finally:
    chief.close()
  if chief.budget_spent():
    run_dir_lib.mark_done(run_dir)
