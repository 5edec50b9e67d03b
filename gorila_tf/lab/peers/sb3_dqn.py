"""Peer benchmark: Stable-Baselines3's DQN on Pong, for a fixed wall time.

Measures what an SB3 user would run on this machine: `DQN('CnnPolicy')` on
`make_atari_env` (`AtariWrapper`: 30 no-ops, frame skip 4 with max-pooling,
84x84 gray, reward clipping) plus `VecFrameStack(4)`, PyTorch on the CPU, one
gradient update per 4 agent steps. A callback stops `model.learn` after
`--seconds` of wall time, counted from the first step. Prints one final line
`RESULT {json}`.

Needs its own venv (PyTorch is no runtime dependency of ours):

  bash gorila_tf/lab/peers/install_sb3_venv.sh .venv-bench
  .venv-bench/bin/python gorila_tf/lab/peers/sb3_dqn.py --seconds=60
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from importlib import metadata
from typing import Any, Optional

# pylint: disable=g-import-not-at-top,wrong-import-position
import ale_py
import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import DQN
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_atari_env
from stable_baselines3.common.vec_env import VecFrameStack
# pylint: enable=g-import-not-at-top,wrong-import-position

NAME = 'sb3_dqn'
ENV_ID = 'PongNoFrameskip-v4'  # SB3's usual id: no frame skip, no sticky actions
TOTAL_TIMESTEPS = 10**9  # "huge": the callback ends the run
STEPS_PER_UPDATE = 4  # agent steps per gradient update: 8 samples per insert
TARGET_UPDATE_UPDATES = 10_000
EPSILON_DECAY_AGENT_STEPS = 1_000_000
SETTINGS = dict(
    env_id=ENV_ID, frameskip=4, frame_stack=4, noop_max=30,
    repeat_action_probability=0.0, full_action_space=False,
    max_episode_frames=108_000, reward_clipping=True,
    batch_size=32, replay_capacity=100_000, steps_per_update=STEPS_PER_UPDATE,
    # SB3 counts target_update_interval in env steps: 10k updates = 40k steps.
    target_update_period_updates=TARGET_UPDATE_UPDATES,
    target_update_interval_env_steps=TARGET_UPDATE_UPDATES * STEPS_PER_UPDATE,
    discount=0.99, loss='smooth_l1 (huber)', max_grad_norm=10,
    # SB3's standard DQN optimizer (DQNPolicy default) at RL Zoo's Atari lr.
    optimizer='adam(torch.optim.Adam)', learning_rate=1e-4,
    optimize_memory_usage=False, epsilon_start=1.0, epsilon_end=0.1,
    epsilon_decay_agent_steps=EPSILON_DECAY_AGENT_STEPS,
)


class WallClockStop(BaseCallback):
  """Stops `learn` after `seconds` of wall time and records step counts."""

  def __init__(self, seconds: float):
    super().__init__()
    self._seconds = seconds
    self.start = 0.0
    self.end = 0.0
    self.first_update: Optional[tuple[float, int, int]] = None

  def _on_training_start(self) -> None:
    # learn() has built the model and reset the envs: the first step is next.
    self.start = time.perf_counter()

  def _on_step(self) -> bool:
    now = time.perf_counter()
    updates = self.model._n_updates  # pylint: disable=protected-access
    if self.first_update is None and updates > 0:
      self.first_update = (now, self.model.num_timesteps, updates)
    if now - self.start < self._seconds:
      return True
    self.end = now
    return False


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--seconds', type=float, default=60.0)
  parser.add_argument('--num_envs', type=int, default=1)
  parser.add_argument('--learning_starts', type=int, default=1000)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--epsilon', type=float, default=None,
                      help='fixed exploration rate (default: 1.0 -> 0.1 '
                      'over 1M agent steps, as ours)')
  parser.add_argument('--torch_threads', type=int, default=0,
                      help='torch intra-op threads (default 0: torch\'s own '
                      'choice, one per core)')
  return parser.parse_args(argv)


def make_model(args: argparse.Namespace) -> DQN:
  """DQN('CnnPolicy') on N Atari envs with the shared settings."""
  gym.register_envs(ale_py)
  env = make_atari_env(
      ENV_ID, n_envs=args.num_envs, seed=args.seed,
      env_kwargs=dict(repeat_action_probability=0.0, full_action_space=False,
                      max_num_frames_per_episode=108_000),
      wrapper_kwargs=dict(noop_max=30, frame_skip=4, screen_size=84,
                          clip_reward=True))
  env = VecFrameStack(env, n_stack=4)
  if args.epsilon is None:
    start, end = 1.0, 0.1
    fraction = EPSILON_DECAY_AGENT_STEPS / TOTAL_TIMESTEPS
  else:
    start = end = args.epsilon
    fraction = 1e-9
  return DQN(
      'CnnPolicy', env,
      learning_rate=SETTINGS['learning_rate'],
      buffer_size=SETTINGS['replay_capacity'],
      learning_starts=args.learning_starts,
      batch_size=SETTINGS['batch_size'],
      gamma=SETTINGS['discount'],
      # train_freq counts env.step calls (num_envs steps each), so
      # num_envs updates per 4 calls keep one update per 4 agent steps.
      train_freq=STEPS_PER_UPDATE,
      gradient_steps=args.num_envs,
      target_update_interval=SETTINGS['target_update_interval_env_steps'],
      exploration_fraction=fraction,
      exploration_initial_eps=start,
      exploration_final_eps=end,
      max_grad_norm=SETTINGS['max_grad_norm'],
      optimize_memory_usage=False,
      seed=args.seed,
      device='cpu',
      verbose=0)


def run(args: argparse.Namespace) -> dict[str, Any]:
  """Trains for `args.seconds` of wall time; returns the RESULT record."""
  if args.torch_threads:
    torch.set_num_threads(args.torch_threads)
  model = make_model(args)
  stop = WallClockStop(args.seconds)
  model.learn(total_timesteps=TOTAL_TIMESTEPS, callback=stop)
  seconds = (stop.end or time.perf_counter()) - stop.start
  steps = model.num_timesteps
  updates = model._n_updates  # pylint: disable=protected-access
  result = dict(
      name=NAME, env_steps=steps, updates=updates, seconds=round(seconds, 3),
      env_steps_per_s=round(steps / seconds, 2),
      updates_per_s=round(updates / seconds, 2),
      peak_rss_mb=round(
          resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
      num_envs=args.num_envs, learning_starts=args.learning_starts,
      seed=args.seed, epsilon=args.epsilon if args.epsilon is not None
      else 'linear 1.0->0.1 over 1M agent steps',
      replay='sb3 ReplayBuffer (numpy, in-process)',
      torch_threads=torch.get_num_threads(),
      library_versions={name: metadata.version(name) for name in (
          'stable_baselines3', 'torch', 'gymnasium', 'ale-py', 'numpy')},
      **SETTINGS)
  result.update(_train_phase(stop, steps, updates))
  model.get_env().close()
  return result


def _train_phase(stop: WallClockStop, steps: int,
                 updates: int) -> dict[str, float]:
  """Rates from the first gradient update on: no warm-up, no random phase."""
  if stop.first_update is None:
    return {}
  t0, steps0, updates0 = stop.first_update
  span = max(stop.end - t0, 1e-9)
  return dict(first_update_at_s=round(t0 - stop.start, 3),
              train_seconds=round(span, 3),
              train_env_steps_per_s=round((steps - steps0) / span, 2),
              train_updates_per_s=round((updates - updates0) / span, 2))


def main(argv: Optional[list[str]] = None) -> None:
  args = parse_args(argv)
  np.random.seed(args.seed)
  result = run(args)
  sys.stdout.flush()
  print('RESULT ' + json.dumps(result), flush=True)


if __name__ == '__main__':
  main()
