r"""Export the greedy policy of a checkpoint as a self-contained SavedModel.

  python -m gorila_tf.tools.export --run_dir=runs/pong1 --out=exported/pong_policy

The SavedModel holds plain (unsharded) variables and two functions:
`action(observations) -> int32 actions` (the default serving signature) and
`q_values(observations) -> [B, num_actions]`. Observations are
[B, frame_stack, *frame] as the actors see them (uint8 84x84 frames for
Atari). The run's config is written beside it (gorila_config.json), so
gorila-eval and gorila-play take it with --policy. It loads with
`tf.saved_model.load` alone, without gorila_tf:

  policy = tf.saved_model.load('exported/pong_policy')
  actions = policy.action(observations)
"""

from __future__ import annotations

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import flags  # pylint: disable=g-import-not-at-top

from gorila_tf import command
from gorila_tf import errors
from gorila_tf import exit_codes

FLAGS = flags.FLAGS


def define_flags():
  """Defines the command's flags, at run time: importing registers none."""
  flags.DEFINE_string('run_dir', None, 'Run directory (newest checkpoint).')
  flags.DEFINE_string('checkpoint', None, 'A checkpoint path (ckpt-N prefix).')
  flags.DEFINE_string('config', None, 'Preset, for a checkpoint without run dir.')
  flags.DEFINE_string('out', None, 'Directory to write the SavedModel to.')


def main(argv):
  del argv
  from gorila_tf.runtime import run_dir as run_dir_lib  # pylint: disable=g-import-not-at-top
  if not FLAGS.out:
    raise errors.ConfigError('--out is required (the SavedModel directory)')
  checkpoint, config = run_dir_lib.resolve_checkpoint(
      FLAGS.run_dir, FLAGS.checkpoint, FLAGS.config, [])
  from gorila_tf.agent import environments  # pylint: disable=g-import-not-at-top
  from gorila_tf.runtime import evaluator  # pylint: disable=g-import-not-at-top
  info = environments.env_info(config.env)
  from gorila_tf.runtime import policy  # pylint: disable=g-import-not-at-top
  q_net, updates, frames = evaluator.restore_online_network(checkpoint, config, info)
  policy.export(q_net, FLAGS.out, config)
  print(f'exported the greedy policy of {checkpoint} ({updates} updates, '
        f'{frames} frames) to {FLAGS.out}')
  return exit_codes.OK


def cli():
  command.run(define_flags, main)


if __name__ == '__main__':
  cli()
