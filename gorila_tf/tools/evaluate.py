r"""Score a checkpoint with the paper's evaluation protocol, from the shell.

  python -m gorila_tf.tools.evaluate --run_dir=runs/pong1             # newest checkpoint
  python -m gorila_tf.tools.evaluate --checkpoint=runs/pong1/checkpoints/ckpt-200000
  python -m gorila_tf.tools.evaluate --run_dir=runs/pong1 --set=eval.episodes=10
  python -m gorila_tf.tools.evaluate --policy=runs/pong1/policy   # an exported policy

Protocol (no-op starts): up to 30 random no-op actions at the start of each
episode, epsilon 0.05, episodes capped at 18,000 frames, 30 episodes. Prints
the mean, its standard error, the human-normalized score and the published
DQN and Gorila scores for the game (normalized with the same protocol's random
and human baselines), and writes the row as JSON with --out.

Human-start evaluation (starting from states of human play) needs the human
trajectories of Nair et al. 2015, which were never published; it is refused
rather than imitated.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')

from absl import flags  # pylint: disable=g-import-not-at-top

from gorila_tf import command
from gorila_tf import config as config_lib
from gorila_tf import errors
from gorila_tf import exit_codes
from gorila_tf.runtime import run_dir as run_dir_lib

FLAGS = flags.FLAGS


def define_flags():
  """Defines the command's flags, at run time: importing registers none."""
  flags.DEFINE_string('run_dir', None, 'Run directory; its newest checkpoint and '
                      'config.json are used.')
  flags.DEFINE_string('checkpoint', None, 'A checkpoint path (ckpt-N prefix).')
  flags.DEFINE_string('policy', None, 'An exported policy (SavedModel directory '
                      'of gorila-export, or a run\'s policy/).')
  flags.DEFINE_string('config', None, 'Preset for a checkpoint without a run dir.')
  flags.DEFINE_multi_string('set', [], 'Override, section.field=value (repeatable).')
  flags.DEFINE_string('protocol', 'noop', 'Evaluation protocol: only noop exists.')
  flags.DEFINE_string('out', None, 'Also write the row as JSON to this file.')


HUMAN_STARTS_UNAVAILABLE = (
    "--protocol=human_starts needs the human-play start states of Nair et al. "
    "2015, which are not public; allowed: noop")


def check_protocol(protocol: str) -> None:
  """Raises ConfigError unless `protocol` is one this command can run."""
  if protocol != 'noop':
    if protocol == 'human_starts':
      raise errors.ConfigError(HUMAN_STARTS_UNAVAILABLE)
    raise errors.ConfigError(f'--protocol={protocol!r} does not exist; '
                             'allowed: noop')


def resolve_inputs(run_dir, checkpoint, preset, overrides, protocol):
  """(checkpoint path, config) from the flags; raises ConfigError."""
  check_protocol(protocol)
  return run_dir_lib.resolve_checkpoint(run_dir, checkpoint, preset, overrides)


def evaluate_policy(directory: str, overrides) -> dict:
  """The results-table row of an exported policy."""
  from gorila_tf.agent import environments  # pylint: disable=g-import-not-at-top
  from gorila_tf.runtime import evaluator  # pylint: disable=g-import-not-at-top
  from gorila_tf.runtime import policy as policy_lib  # pylint: disable=g-import-not-at-top
  from gorila_tf import reference  # pylint: disable=g-import-not-at-top
  q_values, config = policy_lib.load_policy(
      directory, [*overrides, 'eval.record_frames=0'])
  result = evaluator.evaluate(q_values, config, environments.env_info(config.env),
                              seed=config.run.seed)
  row = reference.table_row(config.env.id, result.mean, result.stderr,
                            len(result.returns), protocol='noop')
  row['policy'] = directory
  return row


def main(argv):
  del argv
  if FLAGS.policy:
    if FLAGS.run_dir or FLAGS.checkpoint or FLAGS.config:
      raise errors.ConfigError('--policy is evaluated on its own: give it '
                               'without --run_dir, --checkpoint or --config')
    check_protocol(FLAGS.protocol)
    return _report(evaluate_policy(FLAGS.policy, FLAGS.set))
  checkpoint, config = resolve_inputs(FLAGS.run_dir, FLAGS.checkpoint,
                                      FLAGS.config, FLAGS.set, FLAGS.protocol)
  from gorila_tf.agent import environments  # pylint: disable=g-import-not-at-top
  from gorila_tf.runtime import evaluator  # pylint: disable=g-import-not-at-top
  config = config_lib.apply_overrides(config, ['eval.record_frames=0'])
  row, _ = evaluator.evaluate_checkpoint(checkpoint, config,
                                         environments.env_info(config.env))
  return _report(row)


def _report(row: dict) -> int:
  from gorila_tf import reference  # pylint: disable=g-import-not-at-top
  print(reference.format_row(row))
  print(json.dumps(row))
  if FLAGS.out:
    run_dir_lib.write_json_atomic(FLAGS.out, row)
  return exit_codes.OK


def cli():
  command.run(define_flags, main)


if __name__ == '__main__':
  cli()
