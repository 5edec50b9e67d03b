"""Peer benchmark: TF-Agents' single-process DQN on Pong, for a fixed wall time.

Measures what a TF-Agents user would run on this machine: `DqnAgent` with a
Nature-CNN `QNetwork`, its collect policy stepped by a `PyDriver` over ale-py's
`AtariVectorEnv`, transitions written to an in-process Reverb table by
`ReverbAddTrajectoryObserver` and sampled back through
`ReverbReplayBuffer.as_dataset`, as in TF-Agents' DQN examples. One gradient
update per 4 agent steps. Prints one final line `RESULT {json}`.

Standalone on purpose: it must not import gorila_tf, so it measures the
library, not our code. Run it with the project's venv:

  .venv/bin/python gorila_tf/lab/peers/tf_agents_dqn.py --seconds=60
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from typing import Any, Callable, Optional

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
import reverb
import tensorflow as tf
from ale_py import vector_env
from tf_agents.agents.dqn import dqn_agent
from tf_agents.drivers import py_driver
from tf_agents.environments import py_environment
from tf_agents.networks import q_network
from tf_agents.policies import py_tf_eager_policy
from tf_agents.replay_buffers import reverb_replay_buffer
from tf_agents.replay_buffers import reverb_utils
from tf_agents.specs import array_spec
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts
from tf_agents.utils import common
# pylint: enable=g-import-not-at-top,wrong-import-position

NAME = 'tf_agents_dqn'
TABLE = 'uniform_table'
CONV_LAYERS = ((32, (8, 8), 4), (64, (4, 4), 2), (64, (3, 3), 1))
FC_LAYERS = (512,)
STEPS_PER_UPDATE = 4  # agent steps per gradient update: 8 samples per insert
SETTINGS = dict(
    game='pong', frameskip=4, frame_stack=4, noop_max=30,
    repeat_action_probability=0.0, full_action_space=False,
    max_episode_frames=108_000, reward_clipping=True,
    batch_size=32, replay_capacity=100_000, target_update_period=10_000,
    steps_per_update=STEPS_PER_UPDATE, discount=0.99, loss='huber',
    # TF-Agents' Atari DQN example: centered RMSProp (tf.compat.v1);
    # lr, decay and epsilon are ours (Nature DQN).
    optimizer='rmsprop_centered(tf.compat.v1.train.RMSPropOptimizer)',
    learning_rate=2.5e-4, rmsprop_decay=0.95, rmsprop_epsilon=0.01,
    epsilon_start=1.0, epsilon_end=0.1, epsilon_decay_agent_steps=1_000_000,
)


class AtariPyEnv(py_environment.PyEnvironment):
  """`AtariVectorEnv` as a batched TF-Agents PyEnvironment.

  ale-py auto-resets in NEXT_STEP mode: the step after a terminal one ignores
  its action and returns the first observation, which is exactly TF-Agents'
  LAST -> FIRST contract, so step types map one to one.
  """

  def __init__(self, num_envs: int, seed: int):
    super().__init__()
    self._env = vector_env.AtariVectorEnv(
        game=SETTINGS['game'], num_envs=num_envs,
        repeat_action_probability=SETTINGS['repeat_action_probability'],
        noop_max=SETTINGS['noop_max'], frameskip=SETTINGS['frameskip'],
        stack_num=SETTINGS['frame_stack'], reward_clipping=True,
        use_fire_reset=False,
        max_num_frames_per_episode=SETTINGS['max_episode_frames'],
        num_threads=max(1, min(num_envs, 2)))
    self._num_envs = num_envs
    self._seed = seed
    self._done = np.zeros(num_envs, bool)
    self.agent_steps = 0  # env.step calls x num_envs
    self._obs_spec = array_spec.BoundedArraySpec(
        self._env.single_observation_space.shape, np.uint8, 0, 255,
        name='observation')
    self._action_spec = array_spec.BoundedArraySpec(
        (), np.int64, 0, int(self._env.single_action_space.n) - 1,
        name='action')

  @property
  def batched(self) -> bool:
    return True

  @property
  def batch_size(self) -> int:
    return self._num_envs

  def observation_spec(self) -> array_spec.BoundedArraySpec:
    return self._obs_spec

  def action_spec(self) -> array_spec.BoundedArraySpec:
    return self._action_spec

  def _reset(self) -> ts.TimeStep:
    obs, _ = self._env.reset(seed=self._seed)
    self._done[:] = False
    n = self._num_envs
    return ts.TimeStep(np.full(n, ts.StepType.FIRST, np.int32),
                       np.zeros(n, np.float32), np.ones(n, np.float32), obs)

  def _step(self, action: np.ndarray) -> ts.TimeStep:
    obs, reward, terminated, truncated, _ = self._env.step(
        np.asarray(action, np.int64))
    self.agent_steps += self._num_envs
    done = np.logical_or(terminated, truncated)
    step_type = np.where(self._done, ts.StepType.FIRST,
                         np.where(done, ts.StepType.LAST, ts.StepType.MID))
    # Truncation keeps discount 1: only a real terminal ends the TD target.
    discount = np.where(terminated & ~self._done, 0.0, 1.0)
    self._done = done & ~self._done
    return ts.TimeStep(step_type.astype(np.int32),
                       np.asarray(reward, np.float32),
                       discount.astype(np.float32), obs)

  def close(self) -> None:
    self._env.close()


class PerEnvObserver:
  """Splits a batched trajectory into one Reverb observer per env.

  `ReverbAddTrajectoryObserver` takes unbatched trajectories only, so each
  env gets its own writer (the usual TF-Agents recipe for several envs).
  """

  def __init__(self, observers: list[Callable[[Any], None]]):
    self._observers = observers

  def __call__(self, traj: Any) -> None:
    for i, observer in enumerate(self._observers):
      observer(tf.nest.map_structure(lambda x, i=i: x[i], traj))

  def close(self) -> None:
    for observer in self._observers:
      observer.close()


def make_q_network(env: AtariPyEnv) -> q_network.QNetwork:
  """Nature CNN over uint8 [stack, 84, 84] observations."""
  to_nhwc = tf.keras.layers.Lambda(
      lambda x: tf.experimental.numpy.moveaxis(tf.cast(x, tf.float32) / 255.0,
                                               -3, -1))
  return q_network.QNetwork(
      tensor_spec.from_spec(env.observation_spec()),
      tensor_spec.from_spec(env.action_spec()),
      preprocessing_layers=to_nhwc,
      conv_layer_params=CONV_LAYERS,
      fc_layer_params=FC_LAYERS)


def make_agent(env: AtariPyEnv, epsilon: Optional[float]) -> dqn_agent.DqnAgent:
  """DqnAgent with Nature DQN settings; epsilon decays with the update count."""
  train_step = tf.Variable(0, dtype=tf.int64, trainable=False)
  if epsilon is None:
    # 1M agent steps = 250k updates at one update per 4 steps.
    epsilon = tf.compat.v1.train.polynomial_decay(
        SETTINGS['epsilon_start'], train_step,
        SETTINGS['epsilon_decay_agent_steps'] // STEPS_PER_UPDATE,
        end_learning_rate=SETTINGS['epsilon_end'])
  optimizer = tf.compat.v1.train.RMSPropOptimizer(
      learning_rate=SETTINGS['learning_rate'], decay=SETTINGS['rmsprop_decay'],
      momentum=0.0, epsilon=SETTINGS['rmsprop_epsilon'], centered=True)
  agent = dqn_agent.DqnAgent(
      tensor_spec.from_spec(env.time_step_spec()),
      tensor_spec.from_spec(env.action_spec()),
      q_network=make_q_network(env),
      optimizer=optimizer,
      epsilon_greedy=epsilon,
      target_update_period=SETTINGS['target_update_period'],
      td_errors_loss_fn=common.element_wise_huber_loss,
      gamma=SETTINGS['discount'],
      train_step_counter=train_step)
  agent.initialize()
  agent.train = common.function(agent.train)
  return agent


def make_replay(agent: dqn_agent.DqnAgent, num_envs: int):
  """In-process Reverb server, replay buffer and per-env observers."""
  signature = tensor_spec.add_outer_dim(
      tensor_spec.from_spec(agent.collect_data_spec))
  table = reverb.Table(
      TABLE, max_size=SETTINGS['replay_capacity'],
      sampler=reverb.selectors.Uniform(), remover=reverb.selectors.Fifo(),
      rate_limiter=reverb.rate_limiters.MinSize(1), signature=signature)
  server = reverb.Server([table])
  replay = reverb_replay_buffer.ReverbReplayBuffer(
      agent.collect_data_spec, table_name=TABLE, sequence_length=2,
      local_server=server)
  observer = PerEnvObserver([
      reverb_utils.ReverbAddTrajectoryObserver(
          replay.py_client, TABLE, sequence_length=2)
      for _ in range(num_envs)])
  return server, replay, observer


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--seconds', type=float, default=60.0)
  parser.add_argument('--num_envs', type=int, default=1)
  parser.add_argument('--learning_starts', type=int, default=1000)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--epsilon', type=float, default=None,
                      help='fixed exploration rate (default: 1.0 -> 0.1 '
                      'over 1M agent steps, as ours)')
  return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
  """Collects and trains for `args.seconds` of wall time; returns the result."""
  tf.random.set_seed(args.seed)
  np.random.seed(args.seed)
  env = AtariPyEnv(args.num_envs, args.seed)
  agent = make_agent(env, args.epsilon)
  server, replay, observer = make_replay(agent, args.num_envs)
  policy = py_tf_eager_policy.PyTFEagerPolicy(
      agent.collect_policy, use_tf_function=True, batch_time_steps=False)
  # One batched env step per run(); boundary-only steps make it loop again.
  driver = py_driver.PyDriver(env, policy, [observer], max_steps=1)
  dataset = replay.as_dataset(
      sample_batch_size=SETTINGS['batch_size'], num_steps=2,
      num_parallel_calls=3).prefetch(3)
  iterator = None
  time_step = env.reset()
  policy_state = policy.get_initial_state(args.num_envs)
  updates = 0
  first_update = None  # (time, agent steps) once the train step has compiled
  start = time.perf_counter()
  while time.perf_counter() - start < args.seconds:
    time_step, policy_state = driver.run(time_step, policy_state)
    if env.agent_steps < args.learning_starts:
      continue
    if iterator is None:
      iterator = iter(dataset)
    # No backlog at learning_starts: one update per 4 steps from then on.
    due = (env.agent_steps - args.learning_starts) // STEPS_PER_UPDATE
    while updates < due:
      experience, _ = next(iterator)
      agent.train(experience)
      updates += 1
      if first_update is None:
        first_update = (time.perf_counter(), env.agent_steps, updates)
  seconds = time.perf_counter() - start
  result = summarize(args, env.agent_steps, updates, seconds, start,
                     first_update)
  observer.close()
  server.stop()
  env.close()
  return result


def summarize(args: argparse.Namespace, steps: int, updates: int,
              seconds: float, start: float,
              first_update: Optional[tuple[float, int, int]]) -> dict[str, Any]:
  """The RESULT record; `train_*` rates exclude warm-up and tracing."""
  result = dict(
      name=NAME, env_steps=steps, updates=updates, seconds=round(seconds, 3),
      env_steps_per_s=round(steps / seconds, 2),
      updates_per_s=round(updates / seconds, 2),
      peak_rss_mb=round(
          resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
      num_envs=args.num_envs, learning_starts=args.learning_starts,
      seed=args.seed, epsilon=args.epsilon if args.epsilon is not None
      else 'linear 1.0->0.1 over 1M agent steps',
      replay='reverb (in-process server, Uniform/Fifo, sequence_length=2)',
      library_versions=dict(tensorflow=tf.__version__,
                            tf_agents=_version('tf_agents'),
                            reverb=_version('reverb'),
                            ale_py=_version('ale_py')),
      **SETTINGS)
  if first_update is not None:
    t0, steps0, updates0 = first_update
    span = max(start + seconds - t0, 1e-9)
    result.update(
        first_update_at_s=round(t0 - start, 3),
        train_seconds=round(span, 3),
        train_env_steps_per_s=round((steps - steps0) / span, 2),
        train_updates_per_s=round((updates - updates0) / span, 2))
  return result


def _version(module: str) -> str:
  try:
    from importlib import metadata  # pylint: disable=g-import-not-at-top
    dist = {'tf_agents': 'tf-agents', 'reverb': 'dm-reverb',
            'ale_py': 'ale-py'}[module]
    return metadata.version(dist)
  except Exception:  # pylint: disable=broad-except
    return 'unknown'


def main(argv: Optional[list[str]] = None) -> None:
  result = run(parse_args(argv))
  sys.stdout.flush()
  print('RESULT ' + json.dumps(result), flush=True)


if __name__ == '__main__':
  main()
