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
import dataclasses
import os
import time

import reverb
import tensorflow as tf
from absl import logging

from gorila_tf import cluster as cluster_lib
from gorila_tf import config as config_lib
from gorila_tf import dqn
from gorila_tf import environments
from gorila_tf import learner as learner_lib
from gorila_tf import metrics
from gorila_tf import networks
from gorila_tf import parameter_server
from gorila_tf import replay
from gorila_tf import run_dir as run_dir_lib


@dataclasses.dataclass
class _Model:
  """The variables that live on the ps tasks, plus chief-side counters."""

  q_net: tf.Module
  target_net: tf.Module
  optimizer: tf.keras.optimizers.Optimizer
  frames: tf.Variable  # frames reported by actors
  env_steps: tf.Variable
  episodes: tf.Variable
  wall_time_s: tf.Variable  # training time summed over restarts


def _build_model(strategy, config: config_lib.GorilaConfig,
                 info: environments.EnvInfo) -> _Model:
  with strategy.scope():
    q_net = networks.make_q_network(config.network, info)
    target_net = networks.make_q_network(config.network, info)
    optimizer = learner_lib.make_optimizer(config.learner)
    # Slots must exist before closures run: workers cannot create variables.
    optimizer.build(q_net.trainable_variables)
  counters = [tf.Variable(0, dtype=tf.int64, trainable=False) for _ in range(3)]
  wall = tf.Variable(0.0, dtype=tf.float64, trainable=False)
  return _Model(q_net, target_net, optimizer, *counters, wall)


def _checkpoint(model: _Model) -> tf.train.Checkpoint:
  return tf.train.Checkpoint(
      q_network=model.q_net, target_network=model.target_net,
      optimizer=model.optimizer, frames=model.frames, env_steps=model.env_steps,
      episodes=model.episodes, wall_time_s=model.wall_time_s)


def _per_worker_addresses(task: cluster_lib.Task,
                          config: config_lib.GorilaConfig) -> tf.Tensor:
  """Reverb addresses a worker's learner samples from, selected at run time."""
  addresses = tf.constant(task.worker_reverb_addresses())
  if config.replay.mode == 'global':
    return addresses
  # Local (bundled) replay: the dataset function is traced once for all
  # workers; the worker index is resolved when it runs on each worker.
  index = tf.distribute.coordinator.experimental_get_current_worker_index()
  return tf.reshape(tf.gather(addresses, index), [1])


def _start_chief_reverb(task: cluster_lib.Task,
                        shapes: list[tf.TensorShape]) -> reverb.Server:
  _, port = cluster_lib.split_address(task.chief_reverb_address())
  return reverb.Server(
      tables=[parameter_server.make_variables_table(shapes),
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
    self._strategy = parameter_server.make_strategy(task,
                                                    config.launch.min_shard_bytes)
    self._coordinator = tf.distribute.coordinator.ClusterCoordinator(self._strategy)
    self._model = _build_model(self._strategy, config, self._info)
    self._learner = learner_lib.Learner(self._strategy, self._model.q_net,
                                        self._model.target_net,
                                        self._model.optimizer, config.learner)
    self._manager = tf.train.CheckpointManager(
        _checkpoint(self._model), os.path.join(run_dir, 'checkpoints'),
        max_to_keep=config.run.keep_checkpoints)
    # Whole-variable shapes, from an unsharded copy, to re-join the shards.
    shapes = networks.variable_shapes(networks.make_q_network(config.network,
                                                              self._info))
    self._reverb_server = _start_chief_reverb(task, shapes)
    self._reverb_client = reverb.Client(task.chief_reverb_address())
    self._publisher = parameter_server.ParameterPublisher(
        task.chief_reverb_address(), self._model.q_net, shapes)
    self._summaries = metrics.SummaryWriter(run_dir)

  def _make_iterator(self):
    config, info = self._config, self._info
    task = self._task

    def dataset_fn():
      return replay.make_dataset(_per_worker_addresses(task, config), info,
                                 config.learner.batch_size)

    return iter(self._coordinator.create_per_worker_dataset(dataset_fn))

  @property
  def updates(self) -> int:
    return int(self._model.optimizer.iterations.numpy())

  def restore(self) -> None:
    path = self._manager.restore_or_initialize()
    if path:
      logging.info('resumed from %s at %d updates, %d frames', path,
                   self.updates, int(self._model.frames.numpy()))
    else:
      self._learner.sync_target()
      logging.info('initialised a new run in %s', self._run_dir)

  def save(self) -> str:
    path = self._manager.save(checkpoint_number=self.updates)
    logging.info('checkpoint %s (%d updates, %d frames)', path, self.updates,
                 int(self._model.frames.numpy()))
    return path

  def _replay_size(self) -> int:
    total = 0
    for address in self._task.worker_reverb_addresses():
      try:
        info = reverb.Client(address).server_info(timeout=2)
        total += info[replay.REPLAY_TABLE].current_size
      except (RuntimeError, tf.errors.OpError, KeyError):
        pass  # a bundle restarting: its replay is counted when it is back
    return total

  def run(self) -> None:
    """Trains until `run.max_frames`, then checkpoints and returns."""
    c = self._config
    self.restore()
    self._publisher.publish(self.updates, int(self._model.frames.numpy()))
    iterator = self._make_iterator()
    in_flight = collections.deque()
    loss_window, q_window = [], []
    stats = metrics.ActorStats()
    start = time.monotonic()
    wall_at_start = float(self._model.wall_time_s.numpy())
    last = dict(publish=start, summary=start, checkpoint=start)
    updates_at_target = self.updates
    frame_meter = metrics.RateMeter(int(self._model.frames.numpy()))
    update_meter = metrics.RateMeter(self.updates)
    while int(self._model.frames.numpy()) < c.run.max_frames:
      while len(in_flight) < c.run.max_closures_in_flight:
        in_flight.append(self._coordinator.schedule(self._learner.train_steps,
                                                    args=(iterator,)))
      loss, mean_q = in_flight.popleft().fetch()
      loss_window.append(float(loss))
      q_window.append(float(mean_q))
      updates = self.updates
      if updates - updates_at_target >= c.learner.target_update_period:
        self._learner.sync_target()
        updates_at_target = updates
      now = time.monotonic()
      drained = metrics.drain_stats(self._reverb_client)
      self._add_actor_stats(drained)
      stats.merge(drained)
      self._model.wall_time_s.assign(wall_at_start + now - start)
      if now - last['publish'] >= c.run.publish_every_s:
        self._publisher.publish(updates, int(self._model.frames.numpy()))
        last['publish'] = now
      if now - last['summary'] >= c.run.summary_every_s:
        self._write_summaries(stats, loss_window, q_window, frame_meter,
                              update_meter)
        stats, loss_window, q_window = metrics.ActorStats(), [], []
        last['summary'] = now
      if now - last['checkpoint'] >= c.run.checkpoint_every_s:
        self.save()
        last['checkpoint'] = now
    self._coordinator.join()
    self._write_summaries(stats, loss_window, q_window, frame_meter, update_meter)
    self.save()
    logging.info('frame budget reached: %d frames, %d updates',
                 int(self._model.frames.numpy()), self.updates)

  def _add_actor_stats(self, drained: metrics.ActorStats) -> None:
    m = self._model
    m.env_steps.assign_add(drained.env_steps)
    m.frames.assign_add(drained.env_steps * self._info.frames_per_step)
    m.episodes.assign_add(drained.episodes)

  def _write_summaries(self, stats, loss_window, q_window, frame_meter,
                       update_meter) -> None:
    t = metrics.TAGS
    frames = int(self._model.frames.numpy())
    updates = self.updates
    a = self._config.actor
    staleness = [updates - v for v in stats.param_versions]
    values = {
        t['episodic_return']: metrics.mean_or_nan(stats.return_sum, stats.episodes),
        t['episode_length']: metrics.mean_or_nan(stats.length_sum, stats.episodes),
        t['frames_per_second']: frame_meter.rate(frames),
        t['updates_per_second']: update_meter.rate(updates),
        t['td_loss']: metrics.mean_or_nan(sum(loss_window), len(loss_window)),
        t['mean_q']: metrics.mean_or_nan(sum(q_window), len(q_window)),
        t['epsilon']: dqn.linear_epsilon(frames, a.epsilon_start, a.epsilon_end,
                                         a.epsilon_decay_frames),
        t['replay_size']: self._replay_size(),
        t['param_staleness']: metrics.mean_or_nan(sum(staleness), len(staleness)),
        t['updates']: updates,
        t['frames']: frames,
    }
    self._summaries.scalars(frames, values, episodes=int(self._model.episodes.numpy()),
                            wall_time_s=float(self._model.wall_time_s.numpy()))
    logging.info('frames %d updates %d return %.2f loss %.4f fps %.0f ups %.1f',
                 frames, updates, values[t['episodic_return']],
                 values[t['td_loss']], values[t['frames_per_second']],
                 values[t['updates_per_second']])

  def close(self) -> None:
    self._summaries.close()
    self._reverb_server.stop()


def run(task: cluster_lib.Task, config: config_lib.GorilaConfig,
        run_dir: str) -> None:
  """The chief role."""
  run_dir_lib.prepare(run_dir, config)
  chief = Chief(task, config, run_dir)
  try:
    chief.run()
  finally:
    chief.close()
  run_dir_lib.mark_done(run_dir)
