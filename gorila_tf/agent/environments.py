"""Vector environments the actors and the evaluator step.

Atari games run in ale-py's `AtariVectorEnv` (C++ threads, standard DQN
preprocessing: 84x84 gray, max-pool over the last two of `frameskip` frames,
frame stack, random no-op starts). Other gymnasium games with vector
observations and discrete actions (CartPole) run in a `SyncVectorEnv`.

Both are wrapped in `VectorEnv`, whose observations are always
[num_envs, frame_stack, *frame_shape] and whose rewards are the game's own,
unclipped (clipping is the learner's business, episode returns stay true).
Both auto-reset in gymnasium's NEXT_STEP mode: the step after a terminal or
truncated step resets that env, ignores its action and returns its first
observation with reward 0.

Pictures (`VectorEnv.picture`, for `gorila-play` and the evaluator's
TensorBoard episode) show env 0 as the game looks, or as the agent sees it.
ale-py's vector env returns only the preprocessed frames, so for the
game's colour screen a second, one-game `AtariVectorEnv` at the native
210x160 RGB resolution is seeded like env 0 and given env 0's actions: the
emulator is deterministic, so it plays the same episode, and the agent still
acts on its usual 84x84 gray observations. A step whose reward or episode
end differs between the two raises an error instead of showing another game.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from typing import Optional

import gymnasium as gym
import numpy as np

from gorila_tf import config as config_lib
from gorila_tf import errors

_ATARI_PREFIX = 'ALE/'


@dataclasses.dataclass(frozen=True)
class EnvInfo:
  """What the rest of the system needs to know about a game."""

  env_id: str
  frame_shape: tuple[int, ...]  # one frame: (84, 84) for Atari, (4,) for CartPole
  frame_dtype: np.dtype
  frame_stack: int
  num_actions: int
  frames_per_step: int  # emulator frames per agent step

  @property
  def observation_shape(self) -> tuple[int, ...]:
    return (self.frame_stack,) + self.frame_shape


def is_atari(env_id: str) -> bool:
  return env_id.startswith(_ATARI_PREFIX)


def _ale_registry() -> dict[str, str]:
  """gymnasium id -> ale-py rom id for every registered ALE v5 game."""
  import ale_py  # pylint: disable=g-import-not-at-top
  gym.register_envs(ale_py)
  return {env_id: spec.kwargs['game'] for env_id, spec in gym.registry.items()
          if env_id.startswith(_ATARI_PREFIX) and env_id.endswith('-v5')}


def check_env_id(env_id: str) -> None:
  """Raises ConfigError for an unknown game, suggesting the closest ids."""
  atari = sorted(_ale_registry())
  # Other gymnasium games, without ale-py's legacy ids (Pong-v4 etc.).
  others = sorted(k for k, spec in gym.registry.items()
                  if not k.startswith(_ATARI_PREFIX)
                  and 'ale_py' not in str(spec.entry_point))
  if env_id in (atari if is_atari(env_id) else others):
    return
  close = difflib.get_close_matches(env_id, atari + others, n=3, cutoff=0.5)
  hint = f'; closest: {", ".join(close)}' if close else ''
  if not is_atari(env_id):
    hint += "; Atari games are 'ALE/<Game>-v5', e.g. ALE/Pong-v5"
  raise errors.ConfigError(f'unknown game env.id={env_id!r}{hint}')


def env_info(env_config: config_lib.EnvConfig) -> EnvInfo:
  """Shapes, dtypes and action count of `env_config.id`, without stepping it."""
  check_env_id(env_config.id)
  if is_atari(env_config.id):
    env = _make_atari(env_config, num_envs=1, seed=0)
    num_actions = int(env.single_action_space.n)
    env.close()
    return EnvInfo(env_config.id, (84, 84), np.dtype(np.uint8),
                   env_config.frame_stack, num_actions, env_config.frameskip)
  env = gym.make(env_config.id)
  try:
    space = env.observation_space
    if not isinstance(env.action_space, gym.spaces.Discrete) or len(space.shape) != 1:
      raise errors.ConfigError(
          f'env.id={env_config.id!r} is not supported: non-Atari games need '
          'vector observations and discrete actions (e.g. CartPole-v1)')
    if env_config.frame_stack != 1:
      raise errors.ConfigError(
          f'env.frame_stack={env_config.frame_stack} is out of range for '
          f'{env_config.id}; allowed: 1 (frame stacking is for Atari)')
    return EnvInfo(env_config.id, tuple(space.shape), np.dtype(np.float32), 1,
                   int(env.action_space.n), 1)
  finally:
    env.close()


# The emulator's own screen, for pictures: one frame, no pooling or resizing.
_SCREEN = dict(stack_num=1, img_height=210, img_width=160, grayscale=False,
               maxpool=False)


def _make_atari(env_config: config_lib.EnvConfig, num_envs: int, seed: int,
                noop_max: Optional[int] = None,
                max_episode_frames: Optional[int] = None, screen: bool = False):
  from ale_py import vector_env  # pylint: disable=g-import-not-at-top
  game = _ale_registry()[env_config.id]
  images = _SCREEN if screen else dict(stack_num=env_config.frame_stack)
  return vector_env.AtariVectorEnv(
      game=game,
      num_envs=num_envs,
      frameskip=env_config.frameskip,
      noop_max=env_config.noop_max if noop_max is None else noop_max,
      repeat_action_probability=env_config.repeat_action_probability,
      full_action_space=env_config.full_action_space,
      max_num_frames_per_episode=(env_config.max_episode_frames
                                  if max_episode_frames is None
                                  else max_episode_frames),
      reward_clipping=False,  # returns stay true; the learner clips
      episodic_life=False,  # life loss is handled in the TD target only
      use_fire_reset=False,  # not part of the DQN protocol
      num_threads=max(1, min(num_envs, 2)),
      **images,
  )


def needs_render(env_id: str, view: config_lib.PictureView) -> bool:
  """Whether pictures in `view` need a VectorEnv made with render=True
  (Atari's agent view is its observations; everything else is rendered)."""
  return not (is_atari(env_id) and view == 'agent')


class VectorEnv:
  """A batch of envs with observations shaped [N, frame_stack, *frame_shape]."""

  def __init__(self, env_config: config_lib.EnvConfig, num_envs: int, seed: int,
               noop_max: Optional[int] = None,
               max_episode_frames: Optional[int] = None, render: bool = False):
    """`render`: keep env 0's screen for `picture` (Atari: a second emulator)."""
    self.num_envs = num_envs
    self._seed = seed
    self._atari = is_atari(env_config.id)
    self._screen_env = None  # Atari: env 0's twin with the colour screen
    self._screen = None  # env 0's screen now
    if self._atari:
      self._env = _make_atari(env_config, num_envs, seed, noop_max,
                              max_episode_frames)
      if render:
        self._screen_env = _make_atari(env_config, 1, seed, noop_max,
                                       max_episode_frames, screen=True)
    else:
      cap = max_episode_frames or env_config.max_episode_frames
      mode = 'rgb_array' if render else None
      if render:  # off-screen pictures only: keep pygame away from the sound card
        os.environ.setdefault('SDL_AUDIODRIVER', 'dummy')
      self._env = gym.vector.SyncVectorEnv(
          [lambda: gym.make(env_config.id, max_episode_steps=cap,
                            render_mode=mode)] * num_envs)
    self.num_actions = int(self._env.single_action_space.n)

  def reset(self) -> np.ndarray:
    obs, self.reset_info = self._env.reset(seed=self._seed)
    if self._screen_env is not None:
      screens, _ = self._screen_env.reset(seed=self._seed)
      self._screen = screens[0, -1]
    return self._shape(obs)

  def step(self, actions: np.ndarray):
    """Returns (obs, rewards, terminated, truncated, lives or None)."""
    obs, rewards, terminated, truncated, info = self._env.step(actions)
    if self._screen_env is not None:
      self._step_screen(actions[:1], rewards[0], terminated[0] or truncated[0])
    lives = info.get('lives') if self._atari else None
    return (self._shape(obs), np.asarray(rewards, np.float32),
            np.asarray(terminated, bool), np.asarray(truncated, bool), lives)

  def _step_screen(self, action: np.ndarray, reward: float, ended: bool) -> None:
    screens, rewards, terminated, truncated, _ = self._screen_env.step(action)
    if rewards[0] != reward or bool(terminated[0] or truncated[0]) != ended:
      raise RuntimeError('the colour screen\'s emulator left env 0\'s episode '
                         f'(reward {rewards[0]} vs {reward}); record the '
                         "agent's view instead")
    self._screen = screens[0, -1]

  def stop_rendering(self) -> None:
    """No more pictures are needed: the screen's emulator stops (saves CPU)."""
    if self._screen_env is not None:
      self._screen_env.close()
      self._screen_env = self._screen = None

  def picture(self, observations: np.ndarray,
              view: config_lib.PictureView = 'screen') -> np.ndarray:
    """Env 0 now: 'screen', the game as it looks (needs render=True: Atari's
    210x160 colour screen, or the game's own rendering); 'agent', what the
    network sees (Atari: the newest 84x84 gray frame)."""
    config_lib.check_choice('view', view, config_lib.PictureView)
    if view == 'agent' and self._atari:
      return observations[0, -1]
    if self._atari:
      if self._screen is None:
        raise ValueError('no colour screen: make the VectorEnv with render=True')
      return self._screen
    return self._env.render()[0]

  def _shape(self, obs: np.ndarray) -> np.ndarray:
    if self._atari:
      return obs  # already [N, stack, 84, 84] uint8
    return np.asarray(obs, np.float32)[:, None, :]

  def close(self) -> None:
    self.stop_rendering()
    self._env.close()
