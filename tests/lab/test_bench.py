"""The benchmark command: its arithmetic, its log reading, and a short real run."""

import json
import subprocess
import sys
import threading
import time

import pytest

from gorila_tf import config as config_lib
from gorila_tf.lab import bench
from gorila_tf.lab import bench_faults
from gorila_tf.lab import bench_learning
from gorila_tf.lab import bench_report
from tests.conftest import REPO, run_module


def test_a_measuring_window_ends_after_its_seconds_and_its_first_step():
  stop, steps = threading.Event(), []
  start = time.monotonic()
  threading.Timer(0.3, lambda: steps.append(1)).start()  # a slow first step
  bench.stop_after(0.05, stop, lambda: bool(steps))
  assert stop.is_set() and steps and time.monotonic() - start >= 0.3
  stop.clear()
  start = time.monotonic()
  bench.stop_after(0.05, stop, lambda: True)
  assert stop.is_set() and time.monotonic() - start < 0.3
  stop.clear()
  bench.stop_after(0.0, stop, lambda: False, patience_s=0.1)
  assert stop.is_set()  # a dead actor does not hang the bench


def test_ratios_are_the_issue_targets_from_one_run():
  results = {'emulator': {'env_steps_per_s': 1000.0},
             'actor': {'env_steps_per_s': 850.0},
             'learner': {'pss_over_single': 0.5},
             'e2e': {'env_steps_per_s': 120.0, 'updates_per_s': 30.0},
             'peers': {'tf_agents_dqn': {'updates_per_s': 15.0},
                       'sb3_dqn': {'error': 'missing'}},
             'memory': {'rss_bytes_per_transition': 2048.0}}
  assert bench_report.ratios(results) == {'actor_over_emulator': 0.85,
                                   'pss_over_single_process': 0.5,
                                   'e2e_updates_over_tf_agents_dqn': 2.0,
                                   'replay_kb_per_transition': 2.0}


def test_machine_limit_is_the_learner_rate_less_the_actors_share():
  # L = 50 updates/s alone, A = 1,000 env steps/s alone, 4 steps per update:
  # one update costs 1/50 + 4/1000 = 0.024 machine-seconds -> 41.67/s,
  # = 50 x (1 - 0.004 / 0.024), the actors' share being 1/6.
  results = {'learner': {'single_process_updates_per_s': 50.0},
             'actor': {'env_steps_per_s': 1000.0},
             'e2e': {'updates_per_s': 25.0, 'env_steps_per_update': 4.0}}
  limit = bench_report.machine_limit(results)
  assert abs(limit - 1 / 0.024) < 1e-9
  ratios = bench_report.ratios(results)
  assert abs(ratios['e2e_over_machine_limit'] - 25.0 * 0.024) < 1e-9
  assert bench_report.machine_limit({'learner': {}}) is None


def test_fault_timing_reads_the_launchers_lines():
  state = bench_faults.LogState()
  for line in [
      '[launcher] started worker1 (pid 101)',
      '[chief] I1125 chief.py:318] frames 9000 updates 400 return nan',
      '[launcher] started worker1 (pid 202)',
      '[chief] W1125 bookkeeping.py:356] bundle 1 restarted: 12.5 s without its reports',
      '[chief] I1125 chief.py:318] frames 12000 updates 900 return -20.0',
      '[chief] I1125 chief.py:163] resumed from /r/ckpt-700 at 700 updates, '
      '11000 frames (saved 20.0 s ago; resume 1)']:
    state.read(line)
  assert state.pids == {'worker1': 202}
  assert state.bundle_back == {1: 12.5}
  # A resume sets the counter back: the old chief's 900 must not count as progress.
  assert state.resumed_at == 700 and state.updates == 700


@pytest.mark.e2e
def test_bench_measures_the_emulator_and_the_actors(tmp_path):
  out = tmp_path / 'bench.json'
  proc = run_module('gorila_tf.lab.bench', '--sections=emulator,actor', '--seconds=3',
                    f'--out={out}', timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  results = json.loads(out.read_text())
  assert results['emulator']['env_steps_per_s'] > 0
  assert results['actor']['env_steps_per_s'] > 0
  assert 0 < results['ratios']['actor_over_emulator']
  assert '[actor]' in proc.stdout and 'env_steps_per_s' in proc.stdout


@pytest.mark.e2e
def test_bench_refuses_unknown_sections_and_overrides():
  proc = run_module('gorila_tf.lab.bench', '--sections=emulator,warp', timeout=120)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1] == (
      "error: unknown section 'warp'; allowed: emulator, actor, learner, memory, "
      'e2e, peers, faults, scaling, control, limit, learning, chaos, bad_input, '
      'startup')
  proc = run_module('gorila_tf.lab.bench', '--set=learner.bogus=1', timeout=120)
  assert proc.returncode == 2 and 'learner.bogus' in proc.stderr
  proc = run_module('gorila_tf.lab.bench', '--sections=scaling',
                    '--scaling_points=4x2,8', timeout=120)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1] == (
      "error: --scaling_points: '8' is not <bundles>x<ps>, e.g. 4x2")
  proc = run_module('gorila_tf.lab.bench', '--sections=chaos',
                    '--chaos_minutes=2', '--chaos_calm_s=150', timeout=120)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1] == (
      'error: --chaos_calm_s=150 is out of range; allowed: 0 <= calm_s < 120 '
      '(the faults end --chaos_minutes=2 after the launch)')


def test_the_commands_import_no_tensorflow_before_they_check_their_flags():
  # A bad flag is refused in a second, not after TensorFlow's start-up
  # (~5 s alone, ~15 s beside a training cluster).
  modules = ('gorila_tf.lab.bench', 'gorila_tf.tools.play',
             'gorila_tf.tools.plot', 'gorila_tf.tools.export',
             'gorila_tf.tools.evaluate', 'gorila_tf.tools.suite',
             'gorila_tf.launch.local')
  proc = subprocess.run(
      [sys.executable, '-c', f'import sys\nfor m in {modules!r}: __import__(m)\n'
       "print(sorted(m for m in ('tensorflow', 'reverb') if m in sys.modules))"],
      cwd=REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip() == '[]'


def test_rates_between_read_the_chiefs_records_in_a_time_window(tmp_path):
  lines = [{'time': 100.0 + t, 'learners/updates': 10.0 * t, 'charts/frames': 160.0 * t}
           for t in range(0, 21, 2)]
  (tmp_path / 'progress.jsonl').write_text(
      ''.join(json.dumps(line) + '\n' for line in lines))
  rates = bench_faults.rates_between(str(tmp_path), 104.0, 112.0)
  assert rates == {'updates_per_s': 10.0, 'frames_per_s': 160.0}
  assert bench_faults.rates_between(str(tmp_path), 500.0, 600.0)['updates_per_s'] == 0.0


def probe(frames, relative, dead=0.5):
  return {'frames': frames, 'updates': frames // 16, 'q_spread': relative,
          'q_spread_relative': relative, 'dead': {'conv_0': dead}}


def test_the_learning_check_calls_a_run_collapsed_on_its_newest_flat_probes():
  health = config_lib.HealthConfig(min_q_spread=1e-4, collapse_probes=2)
  alive = bench_learning.judge([probe(1, 0.05), probe(2, 0.3)], health)
  assert alive['passed'] and not alive['collapsed']
  dead = bench_learning.judge([probe(1, 0.05), probe(2, 0.0), probe(3, 0.0)], health)
  assert dead['collapsed'] and not dead['passed']
  assert dead['first_flat_frames'] == 2
  # Alive but not yet telling states apart (Q spread 0.2 % of |Q|): no pass.
  weak = bench_learning.judge([probe(1, 0.002), probe(2, 0.002)], health)
  assert not weak['collapsed'] and not weak['passed']
  assert not bench_learning.judge([], health)['passed']


@pytest.mark.e2e
def test_the_learning_check_trains_and_judges_a_real_run(tmp_path):
  out = tmp_path / 'learning.json'
  proc = run_module('gorila_tf.lab.bench', '--sections=learning',
                    '--config=cartpole', '--learning_seeds=3',
                    '--learning_frames=6000', f'--learning_keep={tmp_path}',
                    '--set=health.every_updates=200', f'--out={out}', timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  (row,) = json.loads(out.read_text())['learning']['rows']
  assert row['seed'] == 3 and row['exit_status'] == 0
  assert row["frames"] >= 6000 and len(row['probes']) >= 1
  assert set(row['dead_at_end']) == {'dense_0', 'dense_1'}
  assert 'learning check: run | seed' in proc.stdout
  assert (tmp_path / 'cartpole_seed3' / 'DONE').exists()
  # Judging an existing run needs no training.
  again = run_module('gorila_tf.lab.bench', '--sections=learning',
                     f'--learning_run_dirs={tmp_path / "cartpole_seed3"}', timeout=300)
  assert again.returncode == 0 and 'cartpole_seed3 | 3 | ' in again.stdout
