"""Actors: act epsilon-greedily in real games and fill the bundle's replay.

One `Actor` drives a vector env of `actor.envs_per_bundle` games with one
batched forward pass of a local Q-network copy per step. The local copy is
refreshed from the parameter server every `actor.param_refresh_steps` steps
(Gorila syncs actors with the parameter server periodically). Until the first
parameters arrive the actor acts uniformly at random, which is what epsilon=1
at the start of training asks for anyway.

Run loop:

    observations = env.reset()
    while not stopped:
      maybe refresh parameters
      actions = epsilon_greedy(q_net(observations))
      observations = env.step(actions)   # each env's transition -> replay
"""

from __future__ import annotations

import threading
from typing import Optional, Protocol, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from gorila_tf import config as config_lib
from gorila_tf.agent import dqn
from gorila_tf.agent import environments
from gorila_tf.agent import replay


# On the way out, the actors' last items wait this long to reach the replay
# (whose rate limiter blocks them once the learners stopped sampling, and
# which the process is about to lose): waiting 5 s per writer kept every
# worker past the launcher's 10-s grace at the end of each run (a run's
# stop took 11 s where its chief took 0.8; 2026-12-07).
STOP_FLUSH_MS = 100


def make_greedy_policy(q_net: tf.Module, observation_shape: Sequence[int],
                       observation_dtype: tf.DType):
  """A compiled batch argmax over the network's Q-values."""

  @tf.function(input_signature=[
      tf.TensorSpec((None,) + tuple(observation_shape), observation_dtype)])
  def greedy(observations):
    return tf.argmax(q_net(observations), axis=-1, output_type=tf.int32)

  return greedy


def epsilon_greedy(greedy_actions: Optional[np.ndarray],
                   epsilon: float | np.ndarray, num_actions: int,
                   rng: np.random.Generator, batch: int) -> np.ndarray:
  """Each entry random with probability epsilon (one for all, or per entry),
  else the greedy action."""
  random_actions = rng.integers(0, num_actions, size=batch, dtype=np.int32)
  if greedy_actions is None:
    return random_actions
  explore = rng.random(batch) < epsilon
  return np.where(explore, random_actions, greedy_actions).astype(np.int32)


class ParameterSource(Protocol):
  """Where an actor's parameters come from (the runtime's
  broadcast.ParameterSubscriber): `refresh()` loads the newest ones into the
  actor's network and returns (their update count, the frames when they were
  published), or None when there is nothing newer."""

  def refresh(self) -> Optional[tuple[int, int]]: ...


class StatsSink(Protocol):
  """Where an actor reports its steps and episodes (the runtime's
  metrics.StatsReporter)."""

  def record_steps(self, env_steps: int, param_version: int) -> None: ...

  def record_episode(self, episode_return: float, length: int) -> None: ...

  def close(self) -> None: ...


class Actor:
  """A bundle's actors: one vector env, one local network, one writer per env."""

  def __init__(self, config: config_lib.GorilaConfig,
               info: environments.EnvInfo, env: environments.VectorEnv,
               q_net: tf.Module, writers: Sequence[replay.TransitionWriter],
               subscriber: ParameterSource, reporter: StatsSink, seed: int,
               bundle: int = 0,
               num_bundles: int = 1):
    self._config = config
    self._bundle = bundle
    self._num_bundles = num_bundles
    self._info = info
    self._env = env
    self._writers = list(writers)
    self._subscriber = subscriber
    self._reporter = reporter
    self._rng = np.random.default_rng(seed)
    self._greedy = make_greedy_policy(q_net, info.observation_shape,
                                      tf.as_dtype(info.frame_dtype))
    self._param_version = -1  # update count of the parameters acted with
    self._published_frames = 0  # global frames when those were published
    self._frames_since_refresh = 0
    self.env_steps = 0

  def epsilon(self) -> float | np.ndarray:
    """The linear schedule's epsilon, or each actor's fixed one (per_actor)."""
    a = self._config.actor
    if a.epsilon_schedule == 'per_actor':
      n = self._env.num_envs
      return dqn.per_actor_epsilons(self._bundle * n, n, self._num_bundles * n,
                                    a.per_actor_epsilon, a.per_actor_alpha)
    frame = self._published_frames + self._frames_since_refresh
    return dqn.linear_epsilon(frame, a.epsilon_start, a.epsilon_end,
                              a.epsilon_decay_frames)

  def refresh_parameters(self) -> None:
    result = self._subscriber.refresh()
    if result is not None:
      self._param_version, self._published_frames = result
      self._frames_since_refresh = 0

  def select_actions(self, observations: np.ndarray) -> np.ndarray:
    epsilon = self.epsilon() if self._param_version >= 0 else 1.0
    greedy = None
    if np.any(np.asarray(epsilon) < 1.0):
      greedy = self._greedy(observations).numpy()
    return epsilon_greedy(greedy, epsilon, self._info.num_actions, self._rng,
                          len(observations))

  def run(self, stop: threading.Event, max_steps: Optional[int] = None) -> None:
    """Acts until `stop` is set (or `max_steps` vector steps, for tests)."""
    n = self._env.num_envs
    observations = self._env.reset()
    for i, writer in enumerate(self._writers):
      writer.begin_episode(observations[i])
    resetting = np.zeros(n, bool)  # env's next step is its auto-reset
    returns = np.zeros(n, np.float64)
    lengths = np.zeros(n, np.int64)
    lives = None
    terminal_on_life_loss = self._config.env.terminal_on_life_loss
    step = 0
    while not stop.is_set() and (max_steps is None or step < max_steps):
      if step % self._config.actor.param_refresh_steps == 0:
        self.refresh_parameters()
      actions = self.select_actions(observations)
      observations, rewards, terminated, truncated, new_lives = self._env.step(actions)
      acted = ~resetting
      for i in np.flatnonzero(resetting):
        self._writers[i].begin_episode(observations[i])
      life_lost = np.zeros(n, bool)
      if terminal_on_life_loss and lives is not None and new_lives is not None:
        life_lost = new_lives < lives
      lives = new_lives
      ended = terminated | truncated
      for i in np.flatnonzero(acted):
        discount = 0.0 if terminated[i] or life_lost[i] else 1.0
        self._writers[i].add(observations[i, -1], actions[i], rewards[i], discount)
        if ended[i]:
          self._writers[i].end_episode()
          self._reporter.record_episode(returns[i] + rewards[i], lengths[i] + 1)
      returns = np.where(acted & ~ended, returns + rewards, 0.0)
      lengths = np.where(acted & ~ended, lengths + 1, 0)
      resetting = acted & ended
      steps = int(acted.sum())
      self.env_steps += steps
      self._frames_since_refresh += steps * self._info.frames_per_step
      self._reporter.record_steps(steps, self._param_version)
      step += 1
    logging.info('actor stopped after %d env steps', self.env_steps)

  def close(self, flush_timeout_ms: int = 5_000) -> None:
    """Closes the writers (each waits up to `flush_timeout_ms` for its
    pending items to reach the table), the stats and the games."""
    for writer in self._writers:
      writer.close(timeout_ms=flush_timeout_ms)
    self._reporter.close()
    self._env.close()
