r"""The paper's 49-game suite: train each game, then compare with the papers.

  python -m gorila_tf.tools.suite --games=all --config=atari --base_dir=runs/suite
  python -m gorila_tf.tools.suite --games=ALE/Pong-v5,ALE/Breakout-v5 \
      --set=run.max_frames=2000000

--mode=local (default) runs the local launcher (`gorila_tf.launch.local`,
with an evaluator) for one game after the other, in <base_dir>/<Game>. After
each game it reads that run's last evaluation from eval.jsonl and rewrites
<base_dir>/results.csv and results.md with every game so far, next to the
published DQN and Gorila scores of --protocol. A game that fails is reported
and the suite goes on; the exit status is then 1. Run directories that exist
are resumed by the launcher, so rerunning the same command continues.

--mode=commands prints one `gorila_tf.train` command per game instead, for
clusters where each game is one job and the cluster manager sets TF_CONFIG.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shlex
import subprocess
import sys
from typing import Any, Callable, Sequence

from absl import flags

from gorila_tf import command
from gorila_tf import config as config_lib
from gorila_tf import errors
from gorila_tf import exit_codes
from gorila_tf import launch
from gorila_tf import reference
from gorila_tf.agent import environments

# The 49 games of Nair et al. (2015), in the reference table's order.
PAPER_GAMES: tuple[str, ...] = tuple(reference.load())
MODES = ('local', 'commands')
EVAL_FILE = 'eval.jsonl'
RESULTS_CSV = 'results.csv'
RESULTS_MD = 'results.md'

FLAGS = flags.FLAGS


def define_flags():
  """Defines the command's flags, at run time: importing registers none."""
  flags.DEFINE_string('games', 'all', "'all' or comma-separated env ids, e.g. "
                      'ALE/Pong-v5,ALE/Breakout-v5.')
  flags.DEFINE_string('config', 'atari', 'Preset name from configs/.')
  flags.DEFINE_string('base_dir', 'runs/suite', 'One run directory per game '
                      'under it, plus results.csv and results.md.')
  flags.DEFINE_multi_string('set', [], 'Override for every game, '
                            'section.field=value (repeatable).')
  flags.DEFINE_string('mode', 'local', "'local': train the games one after the "
                      "other here; 'commands': print one command per game.")
  flags.DEFINE_string('protocol', 'noop', 'Published scores to compare with: '
                      f'{", ".join(reference.PROTOCOLS)}.')


Launch = Callable[[Sequence[str]], int]  # runs a command, returns its status


def parse_games(text: str) -> list[str]:
  """'all' or comma-separated env ids -> ids in the given order, no repeats."""
  if text.strip() == 'all':
    return list(PAPER_GAMES)
  games = list(dict.fromkeys(g.strip() for g in text.split(',') if g.strip()))
  if not games:
    raise errors.ConfigError("--games is empty; use 'all' or env ids like "
                             'ALE/Pong-v5')
  for game in games:
    if game not in PAPER_GAMES:
      close = closest_games(game)
      hint = f'; closest: {", ".join(close)}' if close else ''
      raise errors.ConfigError(f'unknown game {game!r} in --games{hint}')
  return games


def closest_games(text: str) -> list[str]:
  """Paper games whose names look like `text` ('pong', 'ALE/Pongg-v5')."""
  # Compared without 'ALE/' and '-v5', which every id shares and which would
  # make every game look close.
  stems = {game_stem(g).lower(): g for g in PAPER_GAMES}
  typed = re.sub(r'-v\d+$', '', text.removeprefix('ALE/')).lower()
  return [stems[s] for s in
          difflib.get_close_matches(typed, stems, n=3, cutoff=0.6)]


def check_choice(flag: str, value: str, allowed: Sequence[str]) -> None:
  if value not in allowed:
    raise errors.ConfigError(f'unknown {flag}={value!r}; allowed: '
                             f'{", ".join(allowed)}')


def check_overrides(config: str, overrides: Sequence[str]) -> None:
  """Resolves the preset once, so bad input stops the suite before it starts."""
  if any(o.partition('=')[0].strip() == 'env.id' for o in overrides):
    # A later --set wins, so env.id would silently replace every game.
    raise errors.ConfigError('env.id is set per game by --games; remove '
                             '--set=env.id=...')
  config_lib.resolve(config, overrides)


def game_stem(env_id: str) -> str:
  """'ALE/Pong-v5' -> 'Pong': the game's run directory name."""
  return env_id.removeprefix('ALE/').removesuffix('-v5').replace('/', '_')


def game_run_dir(base_dir: str, env_id: str) -> str:
  return os.path.join(base_dir, game_stem(env_id))


def local_command(env_id: str, config: str, base_dir: str,
                  overrides: Sequence[str]) -> list[str]:
  """The local launcher for one game, with an evaluator for its score."""
  return launch.local_command(config, game_run_dir(base_dir, env_id),
                              [f'env.id={env_id}', *overrides], '--evaluator')


def cluster_command(env_id: str, config: str, base_dir: str,
                    overrides: Sequence[str]) -> list[str]:
  """What every task of one game's cluster job runs (role from TF_CONFIG)."""
  return ['python', '-m', 'gorila_tf.train', f'--config={config}',
          f'--run_dir={game_run_dir(base_dir, env_id)}',
          f'--set=env.id={env_id}', *[f'--set={o}' for o in overrides]]


def command_lines(games: Sequence[str], config: str, base_dir: str,
                  overrides: Sequence[str]) -> list[str]:
  """A comment, then one shell command per game."""
  lines = ['# One cluster job per game; each task of a job runs its line with '
           'TF_CONFIG set by the cluster manager',
           '# (ps, worker, chief, and an evaluator task for eval.jsonl).']
  return lines + [shlex.join(cluster_command(g, config, base_dir, overrides))
                  for g in games]


def last_evaluation(run_dir: str) -> dict[str, Any] | None:
  """The last complete line of <run_dir>/eval.jsonl, or None if there is none."""
  path = os.path.join(run_dir, EVAL_FILE)
  if not os.path.exists(path):
    return None
  last = None
  with open(path) as f:
    for line in f:
      try:
        last = json.loads(line)
      except json.JSONDecodeError:
        continue  # a line cut off by a crash
  return last


def collect_row(env_id: str, run_dir: str, protocol: str) -> dict[str, Any]:
  """The game's table row; mean and stderr are None without an evaluation."""
  evaluation = last_evaluation(run_dir)
  if evaluation is None or 'eval/episodic_return' not in evaluation:
    return reference.table_row(env_id, None, None, None, protocol)
  return reference.table_row(
      env_id, evaluation['eval/episodic_return'],
      evaluation.get('eval/episodic_return_stderr'),
      evaluation.get('episodes'), protocol, frames=evaluation.get('step'))


def write_results(rows: list[dict[str, Any]], base_dir: str) -> None:
  reference.write_table(rows, os.path.join(base_dir, RESULTS_CSV),
                        os.path.join(base_dir, RESULTS_MD))


def run_local(games: Sequence[str], config: str, base_dir: str,
              overrides: Sequence[str], protocol: str,
              launch: Launch = subprocess.call) -> int:
  """Trains and scores each game in turn; 1 if any game failed, else 0.

  Args:
    games: env ids, in the order to run them.
    config: preset name.
    base_dir: parent of the per-game run directories and the results.
    overrides: `section.field=value` for every game.
    protocol: which published scores the results are compared with.
    launch: runs one command with its output streamed through; returns its
      exit status (tests pass a fake).

  Returns:
    The suite's exit status.
  """
  os.makedirs(base_dir, exist_ok=True)
  rows, failed = [], []
  for env_id in games:
    print(f'[suite] {env_id}: training in {game_run_dir(base_dir, env_id)}',
          flush=True)
    status = launch(local_command(env_id, config, base_dir, overrides))
    row = collect_row(env_id, game_run_dir(base_dir, env_id), protocol)
    rows.append(row)
    write_results(rows, base_dir)  # every game so far, in case of a crash
    if status != 0 or row['mean'] is None:
      why = f'launcher exit status {status}' if status else f'no {EVAL_FILE}'
      failed.append(f'{env_id} ({why})')
    print(f'[suite] {reference.format_row(row)}', flush=True)
  print(f'[suite] results in {os.path.join(base_dir, RESULTS_MD)}', flush=True)
  if failed:
    print(f'[suite] failed: {", ".join(failed)}', file=sys.stderr)
    return exit_codes.FAILED
  return exit_codes.OK


def main(argv):
  del argv
  games = parse_games(FLAGS.games)
  check_choice('--mode', FLAGS.mode, MODES)
  check_choice('--protocol', FLAGS.protocol, reference.PROTOCOLS)
  check_overrides(FLAGS.config, FLAGS.set)
  for env_id in games:
    environments.check_env_id(env_id)  # the installed ale-py has the rom
  if FLAGS.mode == 'commands':
    print('\n'.join(command_lines(games, FLAGS.config, FLAGS.base_dir,
                                  FLAGS.set)))
    return exit_codes.OK
  return run_local(games, FLAGS.config, FLAGS.base_dir, FLAGS.set,
                   FLAGS.protocol)


def cli():
  command.run(define_flags, main)


if __name__ == '__main__':
  cli()
