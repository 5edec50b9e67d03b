"""The 49-game suite: game list, CLI input checks, results collection."""

import csv
import json
import os

import pytest

from gorila_tf import errors
from gorila_tf.agent import environments
from gorila_tf.tools import suite
from tests.conftest import run_module

PONG_EVALS = [
    {'step': 400_000, 'eval/episodic_return': -20.0,
     'eval/episodic_return_stderr': 0.2, 'episodes': 30, 'updates': 1_000},
    {'step': 800_000, 'eval/episodic_return': 18.3,
     'eval/episodic_return_stderr': 0.4, 'episodes': 30, 'updates': 2_000},
]


def write_evals(run_dir: str, evals: list[dict]) -> None:
  os.makedirs(run_dir, exist_ok=True)
  with open(os.path.join(run_dir, 'eval.jsonl'), 'w') as f:
    f.writelines(json.dumps(e) + '\n' for e in evals)


def test_paper_games_are_49_registered_ale_ids():
  assert len(suite.PAPER_GAMES) == len(set(suite.PAPER_GAMES)) == 49
  assert suite.PAPER_GAMES[0] == 'ALE/Alien-v5'
  for env_id in suite.PAPER_GAMES:
    assert env_id.startswith('ALE/') and env_id.endswith('-v5')
    environments.check_env_id(env_id)  # raises ConfigError if unknown


def test_parse_games_all_and_a_list():
  assert suite.parse_games('all') == list(suite.PAPER_GAMES)
  assert suite.parse_games('ALE/Pong-v5, ALE/Breakout-v5,ALE/Pong-v5') == [
      'ALE/Pong-v5', 'ALE/Breakout-v5']
  with pytest.raises(errors.ConfigError,
                     match="unknown game 'ALE/Pongg-v5' in --games; closest: "
                           'ALE/Pong-v5'):
    suite.parse_games('ALE/Pong-v5,ALE/Pongg-v5')
  with pytest.raises(errors.ConfigError, match='empty'):
    suite.parse_games(' , ')


def test_unknown_game_is_one_line_and_exit_2_with_nothing_written(tmp_path):
  base_dir = tmp_path / 'suite'
  proc = run_module('gorila_tf.tools.suite', '--games=ALE/Pongg-v5',
                    f'--base_dir={base_dir}', timeout=120)
  assert proc.returncode == 2
  errors = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
  assert errors == ["error: unknown game 'ALE/Pongg-v5' in --games; "
                    'closest: ALE/Pong-v5'], proc.stderr[-2000:]
  assert not base_dir.exists()


def test_unknown_config_is_exit_2_with_the_resolve_message(tmp_path):
  base_dir = tmp_path / 'suite'
  proc = run_module('gorila_tf.tools.suite', '--games=ALE/Pong-v5', '--config=atary',
                    f'--base_dir={base_dir}', timeout=120)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1].startswith(
      "error: unknown config preset 'atary'"), proc.stderr[-2000:]
  assert not base_dir.exists()


def test_commands_mode_prints_one_command_per_game(tmp_path):
  base_dir = tmp_path / 'suite'
  proc = run_module('gorila_tf.tools.suite', '--mode=commands',
                    '--games=ALE/Pong-v5,ALE/Breakout-v5',
                    f'--base_dir={base_dir}', '--set=run.max_frames=1000',
                    timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  lines = proc.stdout.strip().splitlines()
  commands = [l for l in lines if not l.startswith('#')]
  assert any('TF_CONFIG' in l for l in lines if l.startswith('#'))
  assert len(commands) == 2
  assert commands[0] == (
      f'python -m gorila_tf.train --config=atari --run_dir={base_dir}/Pong '
      '--set=env.id=ALE/Pong-v5 --set=run.max_frames=1000')
  assert f'--run_dir={base_dir}/Breakout' in commands[1]
  assert not base_dir.exists()


def test_local_command_runs_the_launcher_with_an_evaluator():
  command = suite.local_command('ALE/Pong-v5', 'atari', 'runs/s',
                                ['run.seed=3'])
  assert command[1:] == ['-m', 'gorila_tf.launch.local', '--config=atari',
                         '--run_dir=runs/s/Pong', '--evaluator',
                         '--set=env.id=ALE/Pong-v5', '--set=run.seed=3']


def test_collect_row_reads_the_last_evaluation(tmp_path):
  run_dir = str(tmp_path / 'Pong')
  write_evals(run_dir, PONG_EVALS)
  with open(os.path.join(run_dir, 'eval.jsonl'), 'a') as f:
    f.write('{"step": 9')  # cut off by a crash: ignored
  row = suite.collect_row('ALE/Pong-v5', run_dir, 'noop')
  assert (row['mean'], row['stderr'], row['episodes'], row['frames']) == (
      18.3, 0.4, 30, 800_000)
  # (18.3 + 20.7) / (9.3 + 20.7) = 39 / 30 = 1.30
  assert row['human_normalized'] == pytest.approx(1.30)
  missing = suite.collect_row('ALE/Pong-v5', str(tmp_path / 'none'), 'noop')
  assert missing['mean'] is None and missing['dqn'] == 18.9


def test_run_local_writes_results_after_each_game_and_reports_failures(tmp_path):
  base_dir = str(tmp_path / 'suite')
  launched = []

  def fake_launch(command):
    # Pong trains and evaluates; Breakout's launcher fails without evals.
    launched.append(command)
    run_dir = next(a for a in command if a.startswith('--run_dir='))
    run_dir = run_dir.partition('=')[2]
    if run_dir.endswith('Pong'):
      write_evals(run_dir, PONG_EVALS)
      return 0
    return 1

  status = suite.run_local(['ALE/Pong-v5', 'ALE/Breakout-v5'], 'atari',
                           base_dir, [], 'noop', launch=fake_launch)
  assert status == 1
  assert len(launched) == 2
  with open(os.path.join(base_dir, 'results.csv')) as f:
    rows = list(csv.DictReader(f))
  assert [r['env_id'] for r in rows] == ['ALE/Pong-v5', 'ALE/Breakout-v5']
  assert float(rows[0]['mean']) == 18.3 and rows[1]['mean'] == ''
  markdown = open(os.path.join(base_dir, 'results.md')).read()
  assert '| Pong | 18.3 ± 0.4 | 130.0% |' in markdown
  assert 'Median human-normalized score: 130.0% over 1 games' in markdown


def test_run_local_succeeds_when_every_game_has_a_result(tmp_path):
  base_dir = str(tmp_path / 'suite')

  def fake_launch(command):
    write_evals(os.path.join(base_dir, 'Pong'), PONG_EVALS)
    return 0

  assert suite.run_local(['ALE/Pong-v5'], 'atari', base_dir, [], 'noop',
                         launch=fake_launch) == 0


def test_overrides_are_checked_before_anything_runs():
  suite.check_overrides('atari', ['run.max_frames=1000'])
  with pytest.raises(errors.ConfigError, match='env.id is set per game'):
    suite.check_overrides('atari', ['env.id=ALE/Pong-v5'])
  with pytest.raises(errors.ConfigError, match="unknown config key"):
    suite.check_overrides('atari', ['run.max_frame=1000'])
  with pytest.raises(errors.ConfigError, match="unknown --mode='remote'"):
    suite.check_choice('--mode', 'remote', suite.MODES)
