r"""Watch an agent: play a checkpoint and write a GIF.

  python -m gorila_tf.tools.play --run_dir=runs/pong1 --episodes=2 --out=pong.gif
  python -m gorila_tf.tools.play --checkpoint=runs/pong1/checkpoints/ckpt-1200 --out=a.gif
  python -m gorila_tf.tools.play --policy=runs/pong1/policy --out=pong.gif

Atari GIFs show the game as it looks, the emulator's 210x160 colour screen
(--view=screen, the default), or what the agent sees, the newest 84x84 gray
frame it acts on (--view=agent); either way the agent acts on its usual
preprocessed observations. Other games use their own rendering. The agent
acts with the evaluation epsilon (0.05 for Atari) from the paper's no-op
starts.

  python -m gorila_tf.tools.play --run_dir=runs/pong1 --view=agent --out=seen.gif
"""

from __future__ import annotations

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import typing

from absl import flags  # pylint: disable=g-import-not-at-top
import numpy as np

from gorila_tf import command
from gorila_tf import config as config_lib
from gorila_tf import errors
from gorila_tf import exit_codes
from gorila_tf.runtime import records

FLAGS = flags.FLAGS


def define_flags():
  """Defines the command's flags, at run time: importing registers none."""
  flags.DEFINE_string('run_dir', None, 'Run directory (newest checkpoint).')
  flags.DEFINE_string('checkpoint', None, 'A checkpoint path (ckpt-N prefix).')
  flags.DEFINE_string('policy', None, 'An exported policy (SavedModel directory '
                      'of gorila-export, or a run\'s policy/).')
  flags.DEFINE_string('config', None, 'Preset, for a checkpoint without run dir.')
  flags.DEFINE_multi_string('set', [], 'Override, section.field=value (repeatable).')
  flags.DEFINE_integer('episodes', 1, 'Episodes to play.')
  flags.DEFINE_integer('max_frames', 18_000, 'Frame cap per episode.')
  flags.DEFINE_string('out', 'play.gif', 'GIF to write.')
  flags.DEFINE_integer('fps', 30, 'Frames per second of the GIF.')
  flags.DEFINE_enum('view', 'screen', typing.get_args(config_lib.PictureView),
                    'screen: the game in colour, as it looks; agent: the 84x84 '
                    'gray frames the network acts on (Atari).')


def play(q_net, config: config_lib.GorilaConfig, info, episodes: int,
         max_frames: int, seed: int = 0,
         view: config_lib.PictureView = 'screen'
         ) -> tuple[list[np.ndarray], list[float]]:
  """Plays `episodes` episodes in one env; returns (pictures, returns)."""
  from gorila_tf.agent import actor  # pylint: disable=g-import-not-at-top
  from gorila_tf.agent import environments  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  render = environments.needs_render(config.env.id, view)
  env = environments.VectorEnv(config.env, 1, seed, noop_max=config.eval.noop_max,
                               max_episode_frames=max_frames, render=render)
  greedy = actor.make_greedy_policy(q_net, info.observation_shape,
                                    tf.as_dtype(info.frame_dtype))
  rng = np.random.default_rng(seed)
  observations = env.reset()
  pictures, returns, total = [env.picture(observations, view)], [], 0.0
  while len(returns) < episodes:
    actions = actor.epsilon_greedy(greedy(observations).numpy(), config.eval.epsilon,
                                   info.num_actions, rng, 1)
    observations, rewards, terminated, truncated, _ = env.step(actions)
    total += float(rewards[0])
    if terminated[0] or truncated[0]:
      returns.append(total)
      total = 0.0
      observations, *_ = env.step(actions)  # the auto-reset step
    pictures.append(env.picture(observations, view))
  env.close()
  return pictures, returns


def load_agent(run_dir, checkpoint, policy, preset, overrides):
  """(Q-function, config, what it is) from the flags; raises ConfigError."""
  from gorila_tf.runtime import run_dir as run_dir_lib  # pylint: disable=g-import-not-at-top
  if policy:
    if run_dir or checkpoint or preset:
      raise errors.ConfigError('--policy is played on its own: give it '
                               'without --run_dir, --checkpoint or --config')
    from gorila_tf.runtime import policy as policy_lib  # pylint: disable=g-import-not-at-top
    q_values, config = policy_lib.load_policy(policy, overrides)
    return q_values, config, f'policy {policy}'
  checkpoint, config = run_dir_lib.resolve_checkpoint(
      run_dir, checkpoint, preset, overrides)
  from gorila_tf.agent import environments  # pylint: disable=g-import-not-at-top
  from gorila_tf.runtime import evaluator  # pylint: disable=g-import-not-at-top
  q_net, updates, _ = evaluator.restore_online_network(
      checkpoint, config, environments.env_info(config.env))
  return q_net, config, f'{updates} updates'


def main(argv):
  del argv
  if FLAGS.episodes < 1:
    raise errors.ConfigError(f'--episodes={FLAGS.episodes} is out of range; '
                             'allowed: >= 1')
  q_net, config, what = load_agent(FLAGS.run_dir, FLAGS.checkpoint, FLAGS.policy,
                                   FLAGS.config, FLAGS.set)
  from gorila_tf.agent import environments  # pylint: disable=g-import-not-at-top
  info = environments.env_info(config.env)
  pictures, returns = play(q_net, config, info, FLAGS.episodes, FLAGS.max_frames,
                           view=FLAGS.view)
  with open(FLAGS.out, 'wb') as f:
    f.write(records.gif_bytes(pictures, FLAGS.fps))
  print(f'{FLAGS.out}: {len(pictures)} frames, {len(returns)} episode(s) of '
        f'{what}, returns {", ".join(f"{r:g}" for r in returns)}')
  return exit_codes.OK


def cli():
  command.run(define_flags, main)


if __name__ == '__main__':
  cli()
