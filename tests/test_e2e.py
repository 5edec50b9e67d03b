"""End to end through the CLI: real ps, worker and chief processes on loopback,
real Reverb servers, real games. These are the slow tests (a few minutes)."""

import glob
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from gorila_tf import metrics
from tests.conftest import REPO, run_module


def event_tags(directory):
  tags = set()
  for path in glob.glob(os.path.join(directory, 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        tags.add(value.tag)
  return tags


def checkpoint_counters(run_dir):
  path = tf.train.latest_checkpoint(os.path.join(run_dir, 'checkpoints'))
  reader = tf.train.load_checkpoint(path)
  get = lambda name: int(reader.get_tensor(f'{name}/.ATTRIBUTES/VARIABLE_VALUE'))
  return {'frames': get('frames'), 'env_steps': get('env_steps'),
          'updates': get('optimizer/iterations'), 'path': path}


def test_cartpole_learns_through_the_real_cluster(run_dir):
  proc = run_module('gorila_tf.launch.local', '--config=cartpole',
                    f'--run_dir={run_dir}', '--evaluator', '--max_wall_s=420',
                    timeout=600)
  assert proc.returncode == 0, proc.stdout[-5000:]
  progress = metrics.read_progress(run_dir)
  returns = [r['charts/episodic_return'] for r in progress
             if 'charts/episodic_return' in r]
  # Random play scores ~22; the agent must be clearly better.
  assert max(returns) > 150, returns
  evals = [r['eval/episodic_return'] for r in metrics.read_progress(run_dir, 'eval.jsonl')]
  assert evals and max(evals) >= 150, evals
  assert progress[-1]['charts/frames'] >= 40_000
  tags = event_tags(os.path.join(run_dir, 'tb'))
  assert set(metrics.TAGS.values()) - {metrics.TAGS['eval_return']} <= tags
  assert metrics.TAGS['eval_return'] in event_tags(os.path.join(run_dir, 'tb', 'eval'))


def test_stale_gradients_of_a_delayed_worker_are_discarded_and_training_goes_on(
    run_dir):
  # Worker 1 waits 500 ms for every batch while holding one replica for a
  # whole closure (8 steps): its gradients come from parameters hundreds of
  # updates old, far beyond max_staleness=50.
  proc = run_module('gorila_tf.launch.local', '--config=cartpole',
                    f'--run_dir={run_dir}', '--set=learner.debug_slow_worker=1',
                    '--set=learner.debug_slow_ms=500',
                    '--set=learner.replica_sync_period=8',
                    '--set=learner.max_staleness=50', '--set=run.max_frames=15000',
                    '--max_wall_s=300', timeout=400)
  assert proc.returncode == 0, proc.stdout[-5000:]
  progress = metrics.read_progress(run_dir)
  last = progress[-1]
  assert last['learners/discarded_stale_gradients'] > 0
  assert last['bundles/0/updates'] > 1000  # the healthy learner kept training
  assert last['bundles/1/updates'] < 0.05 * last['bundles/0/updates']
  updates = [r['learners/updates'] for r in progress]
  assert updates == sorted(updates) and updates[-1] > updates[len(updates) // 2]
  assert last['learners/applied_gradients'] == last['learners/updates']


PONG_ARGS = ['--config=pong', '--num_workers=1', '--num_ps=2',
             '--set=replay.min_size=500', '--set=actor.envs_per_bundle=2',
             '--set=run.summary_every_s=2']


def test_pong_checkpoints_and_resumes_with_its_counters(run_dir):
  first = run_module('gorila_tf.launch.local', *PONG_ARGS, f'--run_dir={run_dir}',
                     '--set=run.max_frames=6000', '--max_wall_s=300', timeout=400)
  assert first.returncode == 0, first.stdout[-5000:]
  before = checkpoint_counters(run_dir)
  assert before['frames'] >= 6000 and before['updates'] > 0
  assert before['env_steps'] * 4 == before['frames']
  assert metrics.TAGS['td_loss'] in event_tags(os.path.join(run_dir, 'tb'))
  steps_before = [r['step'] for r in metrics.read_progress(run_dir)]

  # The standalone evaluation of that checkpoint prints its table row (short
  # episodes here; the protocol's other settings are the paper's).
  evaluation = run_module('gorila_tf.evaluate', f'--run_dir={run_dir}',
                          '--set=eval.episodes=2', '--set=eval.parallel_envs=2',
                          '--set=eval.max_episode_frames=2000', timeout=300)
  assert evaluation.returncode == 0, evaluation.stderr[-3000:]
  assert re.search(r'Pong \(noop\): -?\d+\.\d ± \d+\.\d over 2 episodes — '
                   r'-?\d+\.\d% human; DQN 18\.9 \(132\.0%\), Gorila 18\.3 '
                   r'\(130\.0%\)', evaluation.stdout), evaluation.stdout[-2000:]

  second = run_module('gorila_tf.launch.local', *PONG_ARGS, f'--run_dir={run_dir}',
                      '--set=run.max_frames=12000', '--max_wall_s=300', timeout=400)
  assert second.returncode == 0, second.stdout[-5000:]
  assert re.search(rf'resumed from .*ckpt-\d+ at {before["updates"]} updates, '
                   rf'{before["frames"]} frames', second.stdout)
  after = checkpoint_counters(run_dir)
  assert after['frames'] >= 12000 and after['updates'] > before['updates']
  # The curve continues: no step of the resumed run goes back before the first.
  steps_after = [r['step'] for r in metrics.read_progress(run_dir)][len(steps_before):]
  assert steps_after and min(steps_after) >= before['frames']


def start_launcher(run_dir, *extra):
  return subprocess.Popen(
      [sys.executable, '-m', 'gorila_tf.launch.local', '--config=cartpole',
       f'--run_dir={run_dir}', '--set=run.max_frames=10000000', *extra],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_training(proc, timeout=180):
  """Reads launcher output until the chief reports progress; returns child pids."""
  pids, deadline, lines = {}, time.monotonic() + timeout, []
  while time.monotonic() < deadline:
    line = proc.stdout.readline()
    lines.append(line)
    m = re.match(r'\[launcher\] started (\w+) \(pid (\d+)\)', line)
    if m:
      pids[m.group(1)] = int(m.group(2))
    if line.startswith('[chief]') and 'updates' in line and 'frames' in line:
      return pids
  raise AssertionError('no training progress:\n' + ''.join(lines[-50:]))


def alive(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  with open(f'/proc/{pid}/stat') as f:
    return f.read().split()[2] != 'Z'


def test_a_failed_task_stops_the_run_with_an_error_and_no_orphans(run_dir):
  proc = start_launcher(run_dir)
  pids = wait_for_training(proc)
  os.kill(pids['worker0'], signal.SIGKILL)
  out, _ = proc.communicate(timeout=60)
  assert proc.returncode == 1
  assert 'worker0 exited with status -9' in out
  time.sleep(1)
  assert not [role for role, pid in pids.items() if alive(pid)]


def test_sigterm_checkpoints_then_stops_every_task(run_dir):
  proc = start_launcher(run_dir, '--set=run.checkpoint_every_s=3600')
  pids = wait_for_training(proc)
  proc.send_signal(signal.SIGTERM)
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode == 130
  time.sleep(1)
  assert not [role for role, pid in pids.items() if alive(pid)]
  # The chief stopped first and saved where it stopped.
  stopped = re.search(r'stopped: (\d+) frames, (\d+) updates', out)
  assert stopped, out[-3000:]
  counters = checkpoint_counters(run_dir)
  assert counters['updates'] == int(stopped.group(2)) > 0
  assert counters['frames'] == int(stopped.group(1)) > 0
