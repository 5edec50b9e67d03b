"""Real games through the vector-env wrapper: shapes, ids, auto-reset."""

import numpy as np
import pytest

from gorila_tf import config as config_lib
from gorila_tf import errors
from gorila_tf.agent import environments


def test_pong_info_and_observations_follow_dqn_preprocessing():
  env_config = config_lib.resolve('pong').env
  info = environments.env_info(env_config)
  assert (info.frame_shape, info.frame_stack, info.num_actions) == ((84, 84), 4, 6)
  assert info.frames_per_step == 4
  env = environments.VectorEnv(env_config, num_envs=2, seed=0)
  obs = env.reset()
  assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
  obs, rewards, terminated, truncated, lives = env.step(np.zeros(2, np.int32))
  assert obs.shape == (2, 4, 84, 84)
  assert rewards.dtype == np.float32 and terminated.shape == (2,)
  assert lives is not None and lives.shape == (2,)
  env.close()


def test_atari_rewards_are_not_clipped_by_the_env():
  # Pong gives -1 when the opponent scores; clipping is the learner's job, so
  # the check is that rewards arrive as the game's own values.
  env = environments.VectorEnv(config_lib.resolve('pong').env, 1, seed=0)
  env.reset()
  seen = set()
  for _ in range(400):
    _, rewards, *_ = env.step(np.zeros(1, np.int32))
    seen.update(rewards.tolist())
  env.close()
  assert -1.0 in seen


def test_cartpole_observations_get_a_stack_axis():
  env_config = config_lib.resolve('cartpole').env
  info = environments.env_info(env_config)
  assert (info.frame_shape, info.frame_stack, info.num_actions) == ((4,), 1, 2)
  env = environments.VectorEnv(env_config, num_envs=3, seed=0)
  assert env.reset().shape == (3, 1, 4)


def test_cartpole_auto_resets_on_the_step_after_the_end():
  env = environments.VectorEnv(config_lib.resolve('cartpole').env, 1, seed=0)
  env.reset()
  for _ in range(600):
    obs, reward, terminated, truncated, _ = env.step(np.zeros(1, np.int32))
    if terminated[0] or truncated[0]:
      break
  assert terminated[0]
  obs, reward, terminated, truncated, _ = env.step(np.zeros(1, np.int32))
  # NEXT_STEP auto-reset: reward 0, a fresh first observation.
  assert reward[0] == 0.0 and not terminated[0]
  assert np.all(np.abs(obs) < 0.06)  # CartPole starts within +-0.05


@pytest.mark.parametrize('env_id, hint', [
    ('ALE/Pongg-v5', 'closest: ALE/Pong-v5'),
    ('ALE/MsPacman-v4', 'ALE/MsPacman-v5'),
    ('Pong', "Atari games are 'ALE/<Game>-v5'"),
])
def test_unknown_game_suggests_the_closest_ids(env_id, hint):
  with pytest.raises(errors.ConfigError, match=f'unknown game env.id=.*{hint}'):
    environments.check_env_id(env_id)


def test_stacking_frames_of_a_vector_game_is_refused():
  env_config = config_lib.resolve('cartpole', ['env.frame_stack=4']).env
  with pytest.raises(errors.ConfigError, match='env.frame_stack=4 is out of range'):
    environments.env_info(env_config)


def test_noop_starts_stay_within_noop_max():
  # Each env starts after 0..noop_max random no-op steps of frameskip frames.
  env_config = config_lib.resolve('pong').env
  env = environments.VectorEnv(env_config, num_envs=16, seed=5)
  env.reset()
  frames = np.asarray(env.reset_info['episode_frame_number'])
  env.close()
  assert frames.max() <= env_config.noop_max * env_config.frameskip
  assert len(set(frames.tolist())) > 3  # random counts, not one fixed start


def test_no_noops_when_noop_max_is_zero():
  env = environments.VectorEnv(config_lib.resolve('pong').env, 4, seed=5,
                               noop_max=0)
  env.reset()
  assert not np.asarray(env.reset_info['episode_frame_number']).any()
  env.close()


def gray_84(screen):
  """The colour screen as the agent's preprocessing roughly sees it."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  return np.asarray(Image.fromarray(screen).convert('L').resize(
      (84, 84), Image.BILINEAR), np.float32)


def test_the_colour_screen_shows_env_0s_own_episode_across_resets():
  env_config = config_lib.resolve('pong', ['env.max_episode_frames=400']).env
  env = environments.VectorEnv(env_config, num_envs=2, seed=3, render=True)
  observations = env.reset()
  rng = np.random.default_rng(0)
  ends, off_0, off_1 = 0, [], []  # pixels far from env 0's / env 1's frame
  for _ in range(250):  # two episodes of 100 steps and a half
    screen = env.picture(observations)
    assert screen.shape == (210, 160, 3) and screen.dtype == np.uint8
    agent = env.picture(observations, view='agent')
    assert agent.shape == (84, 84)
    gray = gray_84(screen)
    off_0.append((np.abs(gray - observations[0, -1]) > 40).sum())
    off_1.append((np.abs(gray - observations[1, -1]) > 40).sum())
    observations, _, terminated, truncated, _ = env.step(
        rng.integers(0, 6, 2, dtype=np.int32))
    ends += int(terminated[0] or truncated[0])
  env.close()
  assert ends == 2
  # Env 0's frame up to resizing error at the edges of moving objects (seen:
  # 3 pixels on average, 12 at most); env 1's paddles and ball are elsewhere
  # (seen: 30 on average), which shows the measure tells games apart.
  assert max(off_0) <= 20 and np.mean(off_0) < 8 < 15 < np.mean(off_1)


def test_the_colour_screen_has_colours_and_the_agent_view_is_gray():
  env = environments.VectorEnv(config_lib.resolve('pong').env, 1, seed=0,
                               render=True)
  observations = env.reset()
  screen = env.picture(observations).astype(int)
  assert (screen[..., 0] != screen[..., 1]).any()
  assert (screen[..., 1] != screen[..., 2]).any()
  assert env.picture(observations, view='agent').ndim == 2
  env.close()


def test_the_screen_needs_a_rendering_env():
  env = environments.VectorEnv(config_lib.resolve('pong').env, 1, seed=0)
  observations = env.reset()
  with pytest.raises(ValueError, match='render=True'):
    env.picture(observations)
  env.close()
