"""The chaos run: its seeded schedule, its invariants on planted histories,
and a short real run with overlapping faults (bench_chaos.py)."""

import json
import os

import pytest

from gorila_tf.lab import bench_chaos
from tests.conftest import run_module


def test_the_same_seed_replays_the_same_faults():
  a = bench_chaos.schedule(3, minutes=30, every_s=(30, 60), kinds=bench_chaos.KINDS)
  b = bench_chaos.schedule(3, minutes=30, every_s=(30, 60), kinds=bench_chaos.KINDS)
  assert a == b and a != bench_chaos.schedule(4, 30, (30, 60), bench_chaos.KINDS)
  gaps = [y.at_s - x.at_s for x, y in zip(a, a[1:]) if y.at_s != x.at_s]
  assert all(30 <= g <= 60 for g in gaps)
  assert a[0].at_s == 60 and a[-1].at_s < 30 * 60
  kinds = {f.kind for f in a}
  assert 'two_at_once' not in kinds  # made of two simple faults at one time
  assert {'kill', 'pause_bundle'} <= kinds
  pauses = [f for f in a if f.kind == 'pause_bundle']
  assert all(5 <= f.duration_s <= 60 and f.target in ('worker0', 'worker1')
             for f in pauses)


class Planted(bench_chaos.Chaos):
  """A chaos run's record, planted: no cluster."""

  def __init__(self, run_dir, samples, resumes=(), console=()):
    self.run_dir, self.samples, self.console = run_dir, samples, list(console)
    launch = type('L', (), {'resumes': list(resumes)})()
    self.launches = [launch]


def sample(t, updates, chiefs=1, lease=10, pids=(10,)):
  return {'t': t, 'updates': updates, 'frames': 4 * updates, 'chiefs': chiefs,
          'lease_pid': lease, 'chief_pids': list(pids)}


def by_name(rows):
  return {r['invariant']: r for r in rows}


def test_counters_may_go_back_only_to_a_resumed_checkpoint(tmp_path):
  # 10 updates/s, checkpoints every 20 s: up to 2.5 x 200 updates may be lost.
  ok = [sample(0, 0), sample(50, 500), sample(52, 300), sample(100, 800)]
  rows = by_name(bench_chaos.check(Planted(str(tmp_path), ok, [(51, 300)]),
                                   0, 20.0, 200.0, 'CartPole-v1'))
  assert rows['counters']['violations'] == 0
  back = [sample(0, 0), sample(50, 500), sample(52, 100), sample(100, 800)]
  rows = by_name(bench_chaos.check(Planted(str(tmp_path), back), 0, 20.0, 200.0,
                                   'CartPole-v1'))
  assert rows['counters']['violations'] == 1


def test_two_chiefs_or_a_lease_naming_another_process_are_violations(tmp_path):
  samples = [sample(0, 0), sample(2, 10, chiefs=2, pids=(10, 11)),
             sample(4, 20, lease=99)]
  rows = by_name(bench_chaos.check(Planted(str(tmp_path), samples), 0, 20.0,
                                   200.0, 'CartPole-v1'))
  assert rows['lease']['violations'] == 2


def test_a_traceback_on_the_console_and_a_failed_budget_are_violations(tmp_path):
  chaos = Planted(str(tmp_path), [sample(0, 0)],
                  console=['[chief] Traceback (most recent call last):\n'])
  rows = by_name(bench_chaos.check(chaos, 1, 20.0, 99.0, 'CartPole-v1'))
  assert rows['console']['violations'] == 1
  assert rows['budget']['violations'] == 1
  assert rows['learning']['violations'] == 1  # 99 < 100


@pytest.mark.e2e
def test_a_short_chaos_run_keeps_every_invariant(tmp_path):
  out = tmp_path / 'chaos.json'
  proc = run_module('gorila_tf.lab.bench', '--sections=chaos', '--config=cartpole',
                    '--chaos_minutes=3', '--chaos_every_s=20,30', '--chaos_seed=2',
                    '--chaos_frames=60000', f'--out={out}', timeout=1500)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(out.read_text())['chaos']
  assert len(result['faults']) >= 5
  assert result['violations'] == 0, bench_chaos.table(result)
  assert 'chaos run: seed 2' in proc.stdout
