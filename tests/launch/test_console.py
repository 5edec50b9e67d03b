"""What the launcher's console shows: every task's lines but known noise,
which is counted there and kept in the task's log."""

import glob
import os
import re
import subprocess
import sys

from gorila_tf import exit_codes
from gorila_tf.launch import noise
from tests.conftest import REPO

REVERB_WARNING = ('[reverb/cc/trajectory_writer.cc:655] The number of pending '
                  'items is alarmingly high, did you forget to call Flush? 3 '
                  'items are waiting to be sent and 61 items have been sent')
CUDA_ERROR = ('2026-11-25 16:40:26.702050: E external/local_xla/xla/stream_'
              'executor/cuda/cuda_dnn.cc:9261] Unable to register cuDNN factory')
CHIEF_LINE = ('I1125 16:41:55.953460 139711876627328 chief.py:297] frames 66112 '
              'updates 1259 return - loss 0.0112 fps 369 ups 24.6')


class FakeClock:

  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


def test_known_noise_is_left_out_and_everything_else_is_shown():
  console = noise.ConsoleFilter('worker0', 'runs/x/logs/worker0.log')
  assert not console.shows(REVERB_WARNING)
  assert not console.shows(CUDA_ERROR)
  assert console.shows(CHIEF_LINE)
  assert console.shows('W1125 broadcast.py:119] parameter pull failed')
  assert console.shows('Traceback (most recent call last):')
  assert console.left_out == 2


def test_the_summary_comes_every_few_minutes_with_counts_and_where_they_are():
  clock = FakeClock()
  console = noise.ConsoleFilter('worker0', 'runs/x/logs/worker0.log',
                                every_s=300, clock=clock)
  for _ in range(1234):
    console.shows(REVERB_WARNING)
  console.shows(CUDA_ERROR)
  clock.now = 299
  assert console.summary() is None  # not due yet
  clock.now = 300
  assert console.summary() == (
      '[launcher] worker0: 1,234 Reverb writer warnings, 1 TensorFlow '
      'CUDA-plugin errors kept in runs/x/logs/worker0.log')
  assert console.summary(force=True) is None  # nothing left out since


def test_every_known_noise_pattern_says_why_it_is_noise():
  for n in noise.KNOWN_NOISE:
    assert n.name and len(n.why) > 20
    assert n.name.endswith('s')  # a plural, for "1,234 <name>"


def launch_pong(run_dir, seconds):
  return subprocess.run(
      [sys.executable, '-m', 'gorila_tf.launch.local', '--config=pong',
       f'--run_dir={run_dir}', '--progress=lines', '--progress_every_s=30',
       f'--max_wall_s={seconds}'],
      cwd=REPO, capture_output=True, text=True, timeout=seconds + 300)


def test_a_pong_cluster_keeps_reverb_warnings_off_the_console_and_in_its_logs(
    run_dir):
  # `make run`'s cluster (2 ps, 2 bundles, chief): ~40 s to start on a small
  # machine, then a minute of training with the replay rate-limited.
  proc = launch_pong(run_dir, seconds=100)
  assert proc.returncode == exit_codes.WALL, proc.stdout[-3000:]
  console = proc.stdout.splitlines()
  assert not [l for l in console if 'Gym has been unmaintained' in l]
  trained = [int(m.group(1)) for m in
             (re.search(r'\[chief\].* updates (\d+) return', l) for l in console) if m]
  assert trained and trained[-1] > 0  # learners sampled: inserts rate-limited
  # The logs keep every line, the noise included; the console says how much.
  logs = {os.path.basename(p)[:-4]: open(p).read().splitlines()
          for p in glob.glob(os.path.join(run_dir, 'logs', '*.log'))}
  assert {'ps0', 'ps1', 'worker0', 'worker1', 'chief'} <= set(logs)
  for role, lines in logs.items():
    shown = [l for l in console if l.startswith(f'[{role}] ')]
    left_out = [l for l in lines if not noise.ConsoleFilter(role, '').shows(l)]
    assert len(lines) == len(shown) + len(left_out), role
    counted = sum(int(k.replace(',', '')) for s in console
                  if s.startswith(f'[launcher] {role}: ')
                  for k in re.findall(r'([\d,]+) [A-Za-z]', s))
    assert counted == len(left_out), role
  # The replay writers stay under Reverb's pending-items threshold: its
  # warning would land in the workers' logs (the console leaves it out, so
  # counting it there, as this test once did, could not fail).
  pending = [l for role in ('worker0', 'worker1') for l in logs[role]
             if 'pending items is alarmingly high' in l]
  assert len(pending) <= 3, pending[:5]
  assert any('Sampler and server are owned' in l for l in logs['chief'])
  assert not any('Sampler and server are owned' in l for l in console)
  per_minute = len(console) / (100 / 60)
  print(f'console: {len(console)} lines ({per_minute:.0f} per minute), '
        f'{sum(len(v) for v in logs.values())} in the logs')

