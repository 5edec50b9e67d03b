"""The agent in one process: actors, replay and learner, no cluster.

For stepping through an update with a debugger, a quick look at a new game,
and the benchmark's single-process line. The same agent code as a cluster's,
made by the same builder: the replay is a Reverb table served in this
process, the actors a thread, the learner's rounds (`Learner.train_steps`,
staleness and loss tests included) run here on plain variables.

    builder = DQNBuilder(config)
    replay table in this process; the actors in a thread
    until run.max_frames:
      learner.train_steps(iterator)         # waits on the replay's rate limiter
      every learner.target_update_period updates: refresh the target network
      every run.publish_every_s: the actors' network takes the learner's
      every health.every_updates: probe the network (health.py)
      every run.summary_every_s: TensorBoard and progress.jsonl
      every run.checkpoint_every_s: checkpoint
    checkpoint; DONE

`gorila-launch --topology=single` runs it. Checkpoints hold the same items
as a cluster's (model.ShardedModel), so the evaluator, gorila-play and
gorila-export read them; a single-process run directory is not resumed by a
cluster (its shard count differs), nor the other way round.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Optional

import reverb
import tensorflow as tf
from absl import logging

from gorila_tf import config as config_lib
from gorila_tf import errors
from gorila_tf.agent import actor as actor_lib
from gorila_tf.agent import dqn
from gorila_tf.agent import health as health_lib
from gorila_tf.agent import networks
from gorila_tf.runtime import bookkeeping
from gorila_tf.runtime import builder as builder_lib
from gorila_tf.runtime import checkpointing
from gorila_tf.runtime import lease as lease_lib
from gorila_tf.runtime import metrics
from gorila_tf.runtime import model as model_lib
from gorila_tf.runtime import records
from gorila_tf.runtime import run_dir as run_dir_lib


class LocalParameters:
  """The actors' parameters, copied from the learner's network in this process
  (an actor.ParameterSource)."""

  def __init__(self, source: networks.QNetwork, target: networks.QNetwork):
    self._source, self._target = source, target
    self._lock = threading.Lock()
    self._published: Optional[tuple[int, int]] = None
    self._taken: Optional[tuple[int, int]] = None

  def publish(self, version: int, frames: int) -> None:
    with self._lock:
      self._published = (version, frames)

  def refresh(self) -> Optional[tuple[int, int]]:
    with self._lock:
      published = self._published
    if published is None or published == self._taken:
      return None
    for target, source in zip(self._target.params, self._source.params):
      target.assign(source)
    self._taken = published
    return published


class LocalStats:
  """Steps and episodes the actors report, summed (an actor.StatsSink)."""

  def __init__(self):
    self._lock = threading.Lock()
    self._pending = metrics.ActorStats()
    self.env_steps = 0  # all of them, for the frame budget

  def record_steps(self, env_steps: int, param_version: int) -> None:
    with self._lock:
      self._pending.env_steps += env_steps
      self.env_steps += env_steps
      if param_version >= 0:
        self._pending.param_versions.append(param_version)

  def record_episode(self, episode_return: float, length: int) -> None:
    with self._lock:
      self._pending.episodes += 1
      self._pending.return_sum += episode_return
      self._pending.length_sum += length

  def drain(self) -> metrics.ActorStats:
    with self._lock:
      drained, self._pending = self._pending, metrics.ActorStats()
    return drained

  def close(self) -> None:
    pass


class SingleProcessAgent:
  """The model, learner and replay of one process; `run` trains it."""

  def __init__(self, config: config_lib.GorilaConfig):
    self.config = config
    self.builder = builder_lib.DQNBuilder(config)
    self.model = model_lib.build_plain_model(self.builder, num_workers=1)
    self.learner = self.builder.make_learner(
        self.model.q_net, self.model.target_net, self.model.optimizer,
        self.model.learner_state, worker_index=lambda: tf.constant(0, tf.int64))

  def make_training(self, replay_address: str):
    """One learner round on the replay at `replay_address`, as a function."""
    iterator = iter(self.builder.make_dataset([replay_address]))
    self.learner.sync_target()
    return lambda: self.learner.train_steps(iterator)

  @property
  def updates(self) -> int:
    return int(self.model.optimizer.iterations.numpy())


def run(config: config_lib.GorilaConfig, run_dir: str,
        stop: threading.Event) -> bool:
  """Trains in this process until `run.max_frames` or `stop`; returns whether
  the frame budget was reached. Raises errors.Collapsed (health) and
  config.NumericalError as a cluster's chief does."""
  lease = lease_lib.hold(run_dir, config.run.lease_timeout_s)
  try:
    run_dir_lib.prepare(run_dir, config, config.run.min_free_disk_mb)
    done = _train(config, run_dir, stop)
    if done:
      run_dir_lib.mark_done(run_dir)
    return done
  finally:
    lease.release()


def _train(config: config_lib.GorilaConfig, run_dir: str,
           stop: threading.Event) -> bool:
  agent = SingleProcessAgent(config)
  server = reverb.Server([agent.builder.make_replay_table()])
  loop = _Loop(agent, run_dir, f'localhost:{server.port}')
  try:
    loop.run(stop)
  finally:
    loop.close()
    server.stop()  # unblocks the actors' writers, then they stop
  return loop.frames >= config.run.max_frames


class _Loop:
  """The one-process training loop and its books (see the module docstring)."""

  def __init__(self, agent: SingleProcessAgent, run_dir: str, address: str):
    c = agent.config
    self._agent, self._config, self._run_dir = agent, c, run_dir
    self._checkpoints = tf.train.CheckpointManager(
        agent.model.checkpoint(), os.path.join(run_dir, 'checkpoints'),
        max_to_keep=c.run.keep_checkpoints)
    checkpointing.restore_newest_readable(self._checkpoints,
                                          self._checkpoints.checkpoint)
    self._train = agent.make_training(address)
    self._stats = LocalStats()
    self._actors_stop = threading.Event()
    self._actor = agent.builder.make_actor(
        reverb.Client(address), self._parameters_for, self._stats,
        seed=builder_lib.actor_seed(c, 0), stop=self._actors_stop)
    self._actor_thread = threading.Thread(target=self._act, daemon=True,
                                          name='actors')
    self._summaries = metrics.SummaryWriter(run_dir)
    self._probe = agent.builder.make_health_probe(agent.model.q_net,
                                                  agent.model.optimizer)
    self._watch = health_lib.HealthWatch(c.health)
    self._frames_before = int(agent.model.frames.numpy())
    self._figures: Optional[health_lib.Figures] = None

  def _parameters_for(self, actors_net: networks.QNetwork) -> LocalParameters:
    self._parameters = LocalParameters(self._agent.model.q_net, actors_net)
    return self._parameters

  @property
  def frames(self) -> int:
    return self._frames_before + self._stats.env_steps * \
        self._agent.builder.info.frames_per_step

  def _act(self) -> None:
    try:
      self._actor.run(self._actors_stop)
    except Exception:  # pylint: disable=broad-except
      if not self._actors_stop.is_set():
        logging.exception('actors failed')
    finally:
      self._actors_stop.set()

  def run(self, stop: threading.Event) -> None:
    c = self._config
    agent = self._agent
    self._parameters.publish(agent.updates, self.frames)
    self._actor_thread.start()
    window = bookkeeping.SummaryWindow(self.frames, agent.updates)
    last = {'publish': time.monotonic(), 'summary': time.monotonic(),
            'checkpoint': time.monotonic()}
    at_target = at_probe = agent.updates
    while (self.frames < c.run.max_frames and not stop.is_set()
           and not self._actors_stop.is_set()):
      result = self._train()
      window.add_learner(result)
      if int(result['nonfinite']):
        raise errors.NumericalError(
            f'non-finite loss or gradient near update {agent.updates}: '
            'training stopped, nothing was applied from it')
      updates = agent.updates
      if updates - at_target >= c.learner.target_update_period:
        agent.learner.sync_target()
        at_target = updates
      if updates - at_probe >= c.health.every_updates:
        self._check_network(updates)
        at_probe = updates
      now = time.monotonic()
      if now - last['publish'] >= c.run.publish_every_s:
        self._parameters.publish(updates, self.frames)
        last['publish'] = now
      if now - last['summary'] >= c.run.summary_every_s:
        self._summarise(window)
        window.reset()
        last['summary'] = now
      if now - last['checkpoint'] >= c.run.checkpoint_every_s:
        self._save()
        last['checkpoint'] = now
    self._summarise(window)
    self._save()
    logging.info('%s: %d frames, %d updates',
                 'frame budget reached' if self.frames >= c.run.max_frames
                 else 'stopped', self.frames, agent.updates)

  def _check_network(self, updates: int) -> None:
    figures = self._figures = self._probe.measure(updates)
    verdict = self._watch.judge(figures)
    for line in verdict.warnings:
      logging.warning('%s', line)
    if verdict.collapsed and self._config.health.stop_on_collapse:
      raise errors.Collapsed(
          f'{health_lib.describe_collapse(figures, self._config.health)}: a '
          'collapsed network does not recover, so the run stops '
          '(health.stop_on_collapse=false trains on)')
    if verdict.collapse:
      logging.warning('%s; training goes on', verdict.collapse)

  def _summarise(self, window: bookkeeping.SummaryWindow) -> None:
    t, a = records.TAGS, self._config.actor
    stats = self._stats.drain()
    frames, updates = self.frames, self._agent.updates
    model = self._agent.model
    model.frames.assign(frames)
    model.env_steps.assign_add(stats.env_steps)
    model.episodes.assign_add(stats.episodes)
    values = {
        t['episodic_return']: metrics.mean_or_nan(stats.return_sum, stats.episodes),
        t['episode_length']: metrics.mean_or_nan(stats.length_sum, stats.episodes),
        t['frames_per_second']: window.frame_meter.rate(frames),
        t['updates_per_second']: window.update_meter.rate(updates),
        t['td_loss']: window.mean('loss'), t['mean_q']: window.mean('mean_q'),
        t['epsilon']: dqn.linear_epsilon(frames, a.epsilon_start, a.epsilon_end,
                                         a.epsilon_decay_frames),
        t['updates']: updates, t['frames']: frames,
        t['applied']: int(model.learner_state.applied.numpy())}
    if self._figures is not None:  # the newest network probe, once
      values.update(self._figures.scalars())
      self._figures = None
    self._summaries.scalars(frames, values, episodes=int(model.episodes.numpy()))
    logging.info('frames %d updates %d return %s loss %.4f', frames, updates,
                 f"{values[t['episodic_return']]:.2f}" if stats.episodes else '-',
                 values[t['td_loss']])

  def _save(self) -> None:
    self._agent.model.frames.assign(self.frames)
    self._agent.model.saved_at.assign(time.time())
    path = self._checkpoints.save(checkpoint_number=self._agent.updates)
    logging.info('checkpoint %s', path)

  def close(self) -> None:
    self._actors_stop.set()
    self._actor_thread.join(timeout=10)
    self._actor.close(flush_timeout_ms=actor_lib.STOP_FLUSH_MS)
    self._summaries.close()
