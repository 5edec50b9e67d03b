"""End to end through the CLI: real ps, worker and chief processes on loopback,
real Reverb servers, real games. These are the slow tests (a few minutes)."""

import glob
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import types

import numpy as np
import pytest
import tensorflow as tf

from gorila_tf import exit_codes
from gorila_tf.launch import isolation
from gorila_tf.launch import noise
from gorila_tf.runtime import records as records_lib
from gorila_tf.runtime import run_dir as run_dir_lib
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


# One CartPole cluster run to its goal, shared by the checks below (each
# check fails, never skips, when the run did not get there). It learns with
# its evaluator on, every learner's replay stream ended every
# PLAYS_STREAM_BATCHES batches (a planted network fault: Reverb ends a
# stream whose sampler a cut link cancelled), until an evaluation of 100
# stops it; then the same command again, which must do nothing.
PLAYS_STREAM_BATCHES = 500
PLAYS_ARGS = ('--config=cartpole', '--evaluator', '--progress_every_s=5',
              '--set=run.stop_at_eval_return=100',
              '--set=run.max_frames=1000000',
              '--set=run.checkpoint_every_s=10', '--set=eval.every_s=5',
              '--set=eval.quick_episodes=5',
              # the winner is still on disk when the checks read it
              '--set=run.keep_checkpoints=50', '--set=run.summary_every_s=1',
              f'--set=faults.end_replay_after_batches={PLAYS_STREAM_BATCHES}')


@pytest.fixture(scope='module')
def plays(tmp_path_factory):
  run_dir = str(tmp_path_factory.mktemp('plays') / 'run')
  first = run_module('gorila_tf.launch.local', *PLAYS_ARGS, f'--run_dir={run_dir}',
                     '--max_wall_s=420', timeout=600)
  scenario = types.SimpleNamespace(run_dir=run_dir, first=first, again=None)
  if first.returncode == 0:
    scenario.evals = records_lib.read_progress(run_dir, 'eval.jsonl')
    scenario.counters = checkpoint_counters(run_dir)
    scenario.again = run_module(
        'gorila_tf.launch.local', '--config=cartpole', f'--run_dir={run_dir}',
        '--evaluator', '--set=run.stop_at_eval_return=100', '--progress=off',
        timeout=300)
  return scenario


def reached_its_goal(scenario):
  assert scenario.first.returncode == 0, scenario.first.stdout[-5000:]
  return scenario.first.stdout


def test_cartpole_learns_through_the_real_cluster(plays):
  stdout = reached_its_goal(plays)
  run_dir = plays.run_dir
  # stdout is a pipe here, so the progress line comes as plain lines.
  assert re.search(r'\[progress\] frames [\d,]+/1,000,000 .* ETA ', stdout)
  progress = records_lib.read_progress(run_dir)
  returns = [r['charts/episodic_return'] for r in progress
             if 'charts/episodic_return' in r]
  # Random play scores ~22; the agent must be clearly better, while acting
  # (ε-greedy) and in the evaluator's greedy episodes.
  assert max(returns) > 100, returns
  evals = [r['eval/episodic_return'] for r in plays.evals]
  assert evals and max(evals) >= 100, evals
  tags = event_tags(os.path.join(run_dir, 'tb'))
  assert set(records_lib.TAGS.values()) - {records_lib.TAGS['eval_return']} <= tags
  # Beyond scalars: the config as text and hparams, Q-value and staleness
  # histograms, and an evaluation episode to watch in the IMAGES tab.
  assert {'config', '_hparams_/session_start_info', 'learners/q_values',
          'learners/gradient_staleness_hist', 'actors/param_staleness_hist'} <= tags
  assert {records_lib.TAGS['eval_return'], 'eval/episode'} <= event_tags(
      os.path.join(run_dir, 'tb', 'eval'))
  # Learning health: probed, alive, nothing said about it.
  assert {'health/q_spread', 'health/q_spread_relative', 'health/dense_0/dead_share',
          'health/dense_1/dead_share', 'health/dense_0/weight_norm',
          'health/dense_0/step_ratio', 'health/dense_0/gradient_norm',
          'health/out/gradient_norm'} <= tags
  probes = [r for r in progress if 'health/q_spread_relative' in r]
  assert len(probes) >= 5 and min(
      r['health/q_spread_relative'] for r in probes) > 1e-4
  assert 'health:' not in stdout


def test_an_ended_replay_stream_is_made_again_without_a_restart(plays):
  stdout = reached_its_goal(plays)
  assert 'restarting' not in stdout and 'Traceback' not in stdout, stdout[-4000:]
  with open(os.path.join(plays.run_dir, 'logs', 'chief.log')) as f:
    chief_log = f.read()
  ended = [int(u) for u in re.findall(
      r"a learner's replay stream ended at update (\d+) \(cut by a network "
      r"fault\): every worker's replay stream is made again", chief_log)]
  # Each remake gives every worker PLAYS_STREAM_BATCHES batches more.
  assert len(ended) >= 2 and ended == sorted(set(ended)), ended
  records = records_lib.read_progress(plays.run_dir)
  assert max(r.get('cluster/replay_streams_restarted', 0)
             for r in records) == len(ended)
  # Training went on after each remake (the next one came at a later
  # update) and the agent learned through them; the run may stop right at
  # the last one (seen on a fresh clone: the final checkpoint at 5,724
  # updates, the sixth remake at 5,724).
  assert plays.counters['updates'] >= ended[-1], (plays.counters, ended)


def test_a_run_stopped_by_max_wall_s_has_its_last_checkpoint_evaluated(run_dir):
  # The wall clock stops training long before the frame budget; the chief
  # checkpoints on its way out and the evaluator scores that checkpoint
  # (without its CPU budget) before the launcher exits with status 3.
  proc = run_module('gorila_tf.launch.local', '--config=cartpole',
                    f'--run_dir={run_dir}', '--evaluator', '--max_wall_s=45',
                    '--set=run.max_frames=10000000', '--set=run.checkpoint_every_s=10',
                    # Only the first checkpoint is due for a periodic evaluation.
                    '--set=eval.every_s=3600',
                    '--set=eval.episodes=4', '--set=eval.parallel_envs=2',
                    '--progress=off', timeout=300)
  assert proc.returncode == exit_codes.WALL, proc.stdout[-5000:]
  assert ('[launcher] training stopped; the evaluator scores the last '
          'checkpoint') in proc.stdout
  assert 'Traceback' not in proc.stdout
  final = checkpoint_counters(run_dir)
  evals = records_lib.read_progress(run_dir, 'eval.jsonl')
  assert evals and evals[-1]['updates'] == final['updates'] > 0, (evals, final)
  assert evals[-1]['step'] == final['frames']  # eval rows are at frames
  # Once: the periodic evaluation took only the first checkpoint.
  assert [r['updates'] for r in evals].count(final['updates']) == 1, evals
  with open(os.path.join(run_dir, 'logs', 'evaluator.log')) as f:
    assert 'without the CPU budget' in f.read()
  assert not os.path.exists(os.path.join(run_dir, 'DONE'))  # it can go on


def test_a_run_stops_when_its_agent_plays_and_leaves_a_policy(plays):
  # run.stop_at_eval_return: the first evaluation at the target ends
  # training (done, exit 0) long before the frame budget; that checkpoint's
  # greedy policy is a SavedModel in the run directory, and the launcher's
  # last line says the score, the time it took and how to watch it.
  stdout = reached_its_goal(plays)
  run_dir, evals = plays.run_dir, plays.evals
  winner = run_dir_lib.read_plays(run_dir)
  assert winner['mean'] >= 100 and evals[-1]['updates'] == winner['updates']
  # Periodic evaluations play the 5 quick episodes; the one that stops the
  # run plays the protocol's 10, on the checkpoint a quick one found >= 100.
  assert winner['episodes'] == evals[-1]['episodes'] == 10
  # A quick score >= 100 is always followed by the full evaluation of the
  # same checkpoint, and only a full one at 100 stopped the run.
  for before, row in zip(evals, evals[1:]):
    quick_pass = before['episodes'] == 5 and before['eval/episodic_return'] >= 100
    confirming = row['episodes'] == 10
    assert quick_pass == confirming, evals
    if confirming:
      assert row['updates'] == before['updates'], evals
  assert all(r['eval/episodic_return'] < 100 for r in evals[:-1]
             if r['episodes'] == 10)
  # Every row says when its checkpoint was written, in seconds of training.
  times = [r['wall_time_s'] for r in evals]
  assert times == sorted(times) and 0 < times[-1] < 420
  closing = [line for line in stdout.splitlines() if 'the agent plays' in line]
  assert closing and closing[-1].startswith('[launcher] the agent plays: '
                                            f'evaluation {winner["mean"]:+.1f}')
  assert f'gorila-play --policy={run_dir}/policy' in closing[-1]
  assert f'{winner["wall_time_s"] / 60:.1f} min of training' in closing[-1]
  assert os.path.exists(os.path.join(run_dir, 'DONE'))
  assert plays.counters['frames'] < 1_000_000
  # The exported policy is that checkpoint's network: the same Q-values.
  policy = tf.saved_model.load(os.path.join(run_dir, 'policy'))
  observations = np.random.default_rng(0).normal(size=(8, 1, 4)).astype(np.float32)
  reader = tf.train.load_checkpoint(winner['checkpoint'])
  kernel = reader.get_tensor('q_network/params/0/.ATTRIBUTES/VARIABLE_VALUE')
  assert np.allclose(policy.params[0].numpy(), kernel)
  assert policy.q_values(observations).shape == (8, 2)
  # The same command again: the agent already plays, nothing is trained.
  again = plays.again
  assert again.returncode == 0, again.stdout[-3000:]
  assert 'already scored run.stop_at_eval_return=100' in again.stdout
  assert checkpoint_counters(run_dir) == plays.counters
  assert records_lib.read_progress(run_dir, 'eval.jsonl') == evals  # nor evaluated


# `make run`'s cluster for the paper's Pong (2 ps, 2 bundles, chief), shared
# by the checks below: ~40 s to start on a small machine, then training
# until --max_wall_s stops it (the replay rate-limited), a standalone
# evaluation of its checkpoint, and the same command resumed for
# PONG_MORE_FRAMES frames more.
PONG_WALL_S = 100
PONG_MORE_FRAMES = 6000


@pytest.fixture(scope='module')
def pong(tmp_path_factory):
  run_dir = str(tmp_path_factory.mktemp('pong') / 'run')
  launch = ('gorila_tf.launch.local', '--config=pong', f'--run_dir={run_dir}')
  first = run_module(*launch, '--progress=lines', '--progress_every_s=30',
                     f'--max_wall_s={PONG_WALL_S}', timeout=PONG_WALL_S + 300)
  scenario = types.SimpleNamespace(run_dir=run_dir, first=first)
  if first.returncode != exit_codes.WALL:
    return scenario
  scenario.before = checkpoint_counters(run_dir)
  # Every line each task logged (the resumed run adds its own below).
  scenario.logs = {}
  for path in glob.glob(os.path.join(run_dir, 'logs', '*.log')):
    with open(path) as f:
      scenario.logs[os.path.basename(path)[:-4]] = f.read().splitlines()
  scenario.steps_before = [r['step'] for r in records_lib.read_progress(run_dir)]
  # Short episodes here; the protocol's other settings are the paper's.
  scenario.evaluation = run_module(
      'gorila_tf.tools.evaluate', f'--run_dir={run_dir}', '--set=eval.episodes=2',
      '--set=eval.parallel_envs=2', '--set=eval.max_episode_frames=2000',
      timeout=300)
  more = scenario.before['frames'] + PONG_MORE_FRAMES
  scenario.second = run_module(*launch, f'--set=run.max_frames={more}',
                               '--max_wall_s=300', timeout=400)
  return scenario


def pong_trained(scenario):
  assert scenario.first.returncode == exit_codes.WALL, scenario.first.stdout[-3000:]
  return scenario.first.stdout.splitlines()


def test_a_pong_cluster_keeps_reverb_warnings_off_the_console_and_in_its_logs(
    pong):
  console = pong_trained(pong)
  assert not [l for l in console if 'Gym has been unmaintained' in l]
  trained = [int(m.group(1)) for m in
             (re.search(r'\[chief\].* updates (\d+) return', l) for l in console) if m]
  assert trained and trained[-1] > 0  # learners sampled: inserts rate-limited
  # The logs keep every line, the noise included; the console says how much.
  logs = pong.logs
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
  per_minute = len(console) / (PONG_WALL_S / 60)
  print(f'console: {len(console)} lines ({per_minute:.0f} per minute), '
        f'{sum(len(v) for v in logs.values())} in the logs')


def test_pong_checkpoints_and_resumes_with_its_counters(pong):
  pong_trained(pong)
  run_dir, before = pong.run_dir, pong.before
  assert before['frames'] > 0 and before['updates'] > 0
  assert before['env_steps'] * 4 == before['frames']
  assert records_lib.TAGS['td_loss'] in event_tags(os.path.join(run_dir, 'tb'))
  # The standalone evaluation of that checkpoint prints its table row.
  evaluation = pong.evaluation
  assert evaluation.returncode == 0, evaluation.stderr[-3000:]
  assert re.search(r'Pong \(noop\): -?\d+\.\d ± \d+\.\d over 2 episodes — '
                   r'-?\d+\.\d% human; DQN 18\.9 \(132\.0%\), Gorila 18\.3 '
                   r'\(130\.0%\)', evaluation.stdout), evaluation.stdout[-2000:]
  second = pong.second
  assert second.returncode == 0, second.stdout[-5000:]
  assert re.search(rf'resumed from .*ckpt-\d+ at {before["updates"]} updates, '
                   rf'{before["frames"]} frames', second.stdout)
  after = checkpoint_counters(run_dir)
  assert after['frames'] >= before['frames'] + PONG_MORE_FRAMES
  assert after['updates'] > before['updates']
  # The curve continues: no step of the resumed run goes back before the first.
  steps_before = pong.steps_before
  progress = records_lib.read_progress(run_dir)
  steps_after = [r['step'] for r in progress][len(steps_before):]
  assert steps_after and min(steps_after) >= before['frames']
  # Replay (Reverb checkpoints) and the epsilon schedule continue too.
  last_before, first_after = progress[len(steps_before) - 1], progress[len(steps_before)]
  assert first_after['replay/size'] >= last_before['replay/size'] > 0
  assert first_after['actors/epsilon'] <= last_before['actors/epsilon'] < 1.0


class Launcher:
  """A launcher subprocess whose output can be waited on line by line."""

  started = []  # stopped after each test (conftest), whatever its outcome

  def __init__(self, run_dir, *extra, config='cartpole'):
    self.proc = subprocess.Popen(
        [sys.executable, '-m', 'gorila_tf.launch.local', f'--config={config}',
         f'--run_dir={run_dir}', *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    Launcher.started.append(self)
    self.lines = []
    self._new = threading.Condition()
    threading.Thread(target=self._read, daemon=True).start()

  @classmethod
  def stop_all(cls):
    """Stops every launcher a test left running (a failed or skipped one)."""
    for launcher in cls.started:
      if launcher.proc.poll() is None:
        launcher.proc.send_signal(signal.SIGTERM)
        try:
          launcher.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
          launcher.proc.kill()  # its tasks die with it (PR_SET_PDEATHSIG)
          launcher.proc.wait()
    cls.started.clear()

  def _read(self):
    for line in self.proc.stdout:
      with self._new:
        self.lines.append(line)
        self._new.notify_all()

  def wait_for(self, pattern, timeout=180, after=0):
    """The first match of `pattern` in lines[after:]; waits for it."""
    deadline = time.monotonic() + timeout
    with self._new:
      while True:
        for line in self.lines[after:]:
          m = re.search(pattern, line)
          if m:
            return m
        left = deadline - time.monotonic()
        if left <= 0 or self.proc.poll() is not None and not self._pending():
          raise AssertionError(f'no {pattern!r} in output:\n'
                               + ''.join(self.lines[-60:]))
        self._new.wait(min(left, 1.0))

  def _pending(self):
    return not self.proc.stdout.closed

  def pids(self):
    return {m.group(1): int(m.group(2)) for m in
            (re.search(r'\[launcher\] started (\w+) \(pid (\d+)\)', l)
             for l in self.lines) if m}

  def finish(self, timeout=300):
    self.proc.wait(timeout=timeout)
    time.sleep(0.5)  # let the reader drain
    return self.proc.returncode, ''.join(self.lines)


TRAINING = r'\[chief\].*frames (\d+) updates (\d+)'


def alive(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  with open(f'/proc/{pid}/stat') as f:
    return f.read().split()[2] != 'Z'


def garble_replay_checkpoints(run_dir, bundle, wait_s=60):
  """Writes garbage into every complete replay checkpoint of `bundle`, once
  there is one; returns the files garbled."""
  pattern = os.path.join(run_dir, 'replay', f'bundle_{bundle}', '*', 'DONE')
  deadline = time.monotonic() + wait_s
  while not glob.glob(pattern) and time.monotonic() < deadline:
    time.sleep(0.2)
  garbled = []
  for done in glob.glob(pattern):
    path = os.path.join(os.path.dirname(done), 'chunks.tfrecord')
    with open(path, 'r+b') as f:
      f.seek(16)
      f.write(b'garbage!' * 4)
    garbled.append(path)
  return garbled


def listening_ports(pid):
  """The TCP ports that process `pid` listens on, in its network namespace."""
  return [int(line.split()[1].split(':')[1], 16)
          for path in (f'/proc/{pid}/net/tcp', f'/proc/{pid}/net/tcp6')
          for line in open(path).read().splitlines()[1:]
          if line.split()[3] == '0A']  # LISTEN


def reachable(port):
  try:
    socket.create_connection(('127.0.0.1', port), timeout=2).close()
  except OSError:
    return False
  return True


# One CartPole cluster through two faults and then SIGTERM, shared by the
# checks below (each fails, never skips, when the run did not get there):
# both faults land mid-training; once the resumed chief has summarised a
# few rounds (the frame budget is out of reach), what every server listens
# on is read and the run is stopped with SIGTERM. (Until 2026-12-06 the
# loopback and SIGTERM checks had a cluster of their own, ~100 s of a
# suite worker.)
@pytest.fixture(scope='module')
def killed_then_stopped(tmp_path_factory):
  run_dir = str(tmp_path_factory.mktemp('killed') / 'run')
  launcher = Launcher(run_dir, '--set=run.max_frames=10000000',
                      '--set=run.checkpoint_every_s=5')
  s = types.SimpleNamespace(run_dir=run_dir)
  try:
    launcher.wait_for(r'checkpoint .*ckpt-')
    # A bundle dies with its replay checkpoint garbled (a broken disk): the
    # other keeps training; the launcher restarts it, it sets the unreadable
    # replay aside and starts empty (Reverb's server failed at every start
    # on it), and it reports again (a new incarnation).
    s.garbled = garble_replay_checkpoints(run_dir, bundle=0)
    os.kill(launcher.pids()['worker0'], signal.SIGKILL)
    mark = len(launcher.lines)
    launcher.wait_for(r'restarting worker0 \(1 of 5\)', after=mark)
    launcher.wait_for(r'\[worker0\].* bundle 0: the replay checkpoint \S+ cannot be '
                      r'loaded: chunks.tfrecord cannot be read .* starts with an '
                      r'empty replay', after=mark)
    s.aside = glob.glob(os.path.join(run_dir, 'replay', 'bundle_0.unreadable-*'))
    launcher.wait_for(r'bundle 0 restarted: [\d.]+ s without its reports',
                      after=mark)
    # Let the chief write that into a summary before it is restarted below.
    launcher.wait_for(r'frames \d+ updates \d+ return', after=len(launcher.lines))
    # A parameter server dies: it is restarted with the chief, which resumes
    # from its latest checkpoint.
    os.kill(launcher.pids()['ps1'], signal.SIGKILL)
    mark = len(launcher.lines)
    # The launcher restarts the chief with the ps, or, when the chief has
    # already exited on the lost ps (one line, "a parameter server is
    # unreachable"), as a task of its own: which comes first is a race.
    launcher.wait_for(r'restarting chief (after the loss of ps1|\(\d+ of \d+\))',
                      after=mark)
    s.resumed = launcher.wait_for(
        r'resumed from .*ckpt-(\d+) at (\d+) updates, (\d+) frames', after=mark)
    s.after_ps_kill = launcher.lines[mark:]
    # The resumed chief trains and summarises until its actors' frames are
    # counted again: an event, not a count of lines (their inserts wait on
    # the learners under the replay's rate limit, and a fresh-clone run once
    # stopped three summaries after the resume with the frames still at the
    # checkpoint's).
    mark, summaries, deadline = len(launcher.lines), 0, time.monotonic() + 180
    while True:
      trained = launcher.wait_for(TRAINING, after=mark)
      mark, summaries = len(launcher.lines), summaries + 1
      if summaries >= 3 and int(trained.group(1)) > int(s.resumed.group(3)):
        break
      assert time.monotonic() < deadline, launcher.lines[-60:]
    # Every task as it is now (the restarted ones by their new pids).
    pids = launcher.pids()
    s.interfaces = {role: isolation.interfaces(pid) for role, pid in pids.items()}
    s.chief_ports = listening_ports(pids['chief'])
    s.reachable = [p for p in s.chief_ports if reachable(p)]
    launcher.proc.send_signal(signal.SIGTERM)
    s.code, s.out = launcher.finish(timeout=300)
    time.sleep(1)
    s.alive = [role for role, pid in pids.items() if alive(pid)]
    return s
  finally:
    Launcher.stop_all()


def test_cluster_survives_a_killed_worker_and_a_killed_ps(killed_then_stopped):
  s = killed_then_stopped
  assert s.code == 130, s.out[-4000:]
  assert len(s.aside) == 1 and s.garbled
  resumed = s.resumed
  assert int(resumed.group(2)) > 0
  progress = records_lib.read_progress(s.run_dir)
  # The first chief saw bundle 0 come back; its successor counts a resume.
  assert max(r.get('bundles/0/restarts', 0) for r in progress) >= 1
  assert progress[-1]['cluster/resumes'] >= 1
  assert progress[-1]['charts/frames'] > int(resumed.group(3))
  # The curve continues from the checkpoint, not from 0: after the resume no
  # record goes below the checkpoint's frames (the work since it is lost).
  frames = [r['charts/frames'] for r in progress]
  resume = next(i for i, r in enumerate(progress) if r['cluster/resumes'] >= 1)
  assert min(frames[resume:]) >= int(resumed.group(3)) > 0
  assert frames[resume:] == sorted(frames[resume:])
  # The chief that lost its ps said so in one line, if at all: no traceback
  # (a chaos run's console had the coordinator's).
  assert not [l for l in s.after_ps_kill if 'Traceback' in l], s.after_ps_kill


# One CartPole cluster with a slowed worker, shared by the checks below:
# worker 1 waits 500 ms for every batch while holding one replica for a
# whole closure (8 steps), so its gradients come from parameters hundreds of
# updates old, far beyond max_staleness=50. Once the healthy learner has
# trained on, worker 0 is killed for good (no restarts allowed).
@pytest.fixture(scope='module')
def slowed_then_killed(tmp_path_factory):
  run_dir = str(tmp_path_factory.mktemp('stale') / 'run')
  launcher = Launcher(run_dir, '--set=faults.slow_worker=1',
                      '--set=faults.slow_ms=500',
                      '--set=learner.replica_sync_period=8',
                      '--set=learner.max_staleness=50',
                      '--set=run.max_frames=10000000', '--max_restarts=0')
  try:
    deadline = time.monotonic() + 240
    while True:
      progress = records_lib.read_progress(run_dir)
      last = progress[-1] if progress else {}
      if (last.get('bundles/0/updates', 0) > 1500
          and last.get('learners/discarded_stale_gradients', 0) > 0):
        break
      assert launcher.proc.poll() is None and time.monotonic() < deadline, (
          'no stale gradient discarded while bundle 0 trained:\n'
          + ''.join(launcher.lines[-60:]))
      time.sleep(1)
    s = types.SimpleNamespace(run_dir=run_dir, progress=progress,
                              pids=launcher.pids())
    os.kill(s.pids['worker0'], signal.SIGKILL)
    s.code, s.out = launcher.finish(timeout=120)
    time.sleep(1)
    s.alive = [role for role, pid in s.pids.items() if alive(pid)]
    return s
  finally:
    Launcher.stop_all()


def test_stale_gradients_of_a_delayed_worker_are_discarded_and_training_goes_on(
    slowed_then_killed):
  progress = slowed_then_killed.progress
  last = progress[-1]
  assert last['learners/discarded_stale_gradients'] > 0
  assert last['bundles/0/updates'] > 1500  # the healthy learner kept training
  assert last['bundles/1/updates'] < 0.05 * last['bundles/0/updates']
  updates = [r['learners/updates'] for r in progress]
  assert updates == sorted(updates) and updates[-1] > updates[len(updates) // 2]
  # Every update on the ps is a counted applied gradient. A closure counts
  # its applies at its end, so a row taken mid-closure may lag by the
  # closures in flight (one per worker) and never lead.
  config = run_dir_lib.read_config(slowed_then_killed.run_dir)
  in_flight = config.learner.steps_per_closure * config.launch.num_workers
  for r in progress:
    lag = r['learners/updates'] - r['learners/applied_gradients']
    assert 0 <= lag <= in_flight, (r, in_flight)


def test_a_task_failing_for_good_stops_the_run_with_no_orphans(slowed_then_killed):
  s = slowed_then_killed
  assert s.code == 1, s.out[-3000:]
  assert 'worker0 exited with status -9' in s.out
  assert 'worker0 failed 1 times; stopping the run' in s.out
  assert not s.alive


def test_local_servers_listen_on_loopback_only(killed_then_stopped):
  s = killed_then_stopped
  # Each task's network namespace has no interface but loopback...
  assert s.interfaces and all(names == ['lo'] for names in s.interfaces.values()), (
      s.interfaces)
  # ...and its listening ports are unreachable from the host's network.
  assert s.chief_ports
  assert not s.reachable


def test_sigterm_checkpoints_then_stops_every_task(killed_then_stopped):
  s = killed_then_stopped
  assert s.code == 130, s.out[-3000:]
  assert not s.alive  # every task, the restarted ones by their new pids
  # Each stopped on its SIGTERM, within the launcher's grace (workers once
  # waited 5 s per replay writer for a flush the stopped learners refused).
  assert 'after SIGTERM; killed' not in s.out, s.out[-3000:]
  # ...and each bundle's actors with it: the ones a rate limiter held back
  # used to be left behind, said on the console (fixed 2026-12-07).
  assert 'did not stop within' not in s.out, s.out[-3000:]
  # The chief stopped first and saved where it stopped.
  stopped = re.findall(r'stopped: (\d+) frames, (\d+) updates', s.out)
  assert stopped, s.out[-3000:]
  frames, updates = map(int, stopped[-1])
  counters = checkpoint_counters(s.run_dir)
  assert counters['updates'] == updates > 0
  assert counters['frames'] == frames > 0


@pytest.mark.parametrize('moment', ['importing', 'building'])
def test_sigterm_during_start_up_stops_cleanly_with_nothing_to_save(run_dir, moment):
  # While the tasks import TensorFlow (at once after the launcher started
  # them), and while the chief builds its model (after its "connected to"
  # line, which it logs once it has reached every ps and worker):
  # no task dies noisily, and the console says what happened. Waited for
  # by the line, not by the clock (a fixed 12 s wait once found training
  # already begun, and the test skipped itself).
  launcher = Launcher(run_dir, '--set=run.max_frames=10000000')
  launcher.wait_for(r'\[launcher\] started chief')
  if moment == 'building':
    launcher.wait_for(r'\[chief\].*connected to \d+ ps and \d+ workers')
  pids = launcher.pids()
  before = ''.join(launcher.lines)
  launcher.proc.send_signal(signal.SIGTERM)
  code, out = launcher.finish(timeout=180)
  assert not re.search(TRAINING, before), 'training had begun: not a start-up stop'
  assert code == 130, out[-3000:]
  time.sleep(1)
  assert not [role for role, pid in pids.items() if alive(pid)]
  for noise in ('Traceback', 'Fatal Python error', 'terminate called', 'error:'):
    assert noise not in out, out[-3000:]
  if not os.path.exists(os.path.join(run_dir, 'checkpoints', 'checkpoint')):
    assert ('[launcher] stopped cleanly during start-up: nothing had been '
            'trained, so there was nothing to save') in out
  if moment == 'building':
    # Between its start-up steps, not after building everything (it went on
    # for ~30 s and stopped at its loop's first check).
    assert 'stopped during start-up, before training began' in out, out[-3000:]


# Planted faults come this many updates into training: a few seconds of a
# CartPole cluster, with checkpoints (every 2 s) and health probes before.
PLANTED_AT_UPDATE = 1000


def test_a_nan_stops_the_run_and_keeps_the_last_good_checkpoint(run_dir):
  launcher = Launcher(run_dir, f'--set=faults.nan_after_updates={PLANTED_AT_UPDATE}',
                      '--set=run.checkpoint_every_s=2',
                      '--set=run.max_frames=10000000')
  code, out = launcher.finish(timeout=300)
  assert code == 4, out[-4000:]
  assert re.search(r'error: non-finite loss or gradient near update \d+: '
                   r'training stopped', out)
  counters = checkpoint_counters(run_dir)
  # Nothing after the NaN: at most the closures in flight (8 of 8 steps).
  assert 0 < counters['updates'] <= PLANTED_AT_UPDATE + 8 * 8
  reader = tf.train.load_checkpoint(counters['path'])
  for name in reader.get_variable_to_shape_map():
    if name.startswith('q_network/params'):
      assert np.isfinite(reader.get_tensor(name)).all(), name


def test_a_planted_collapse_is_reported_and_stops_the_run(run_dir):
  # Every hidden unit killed at PLANTED_AT_UPDATE; probes every 200 updates,
  # two flat ones make a collapse. Reported within 2 probe periods, each up
  # to one loop's updates late (8 closures x 8 steps in flight).
  launcher = Launcher(run_dir, f'--set=faults.kill_units_at_update={PLANTED_AT_UPDATE}',
                      '--set=health.every_updates=200',
                      '--set=run.max_frames=10000000')
  code, out = launcher.finish(timeout=300)
  assert code == 5, out[-4000:]
  planted = int(re.search(r'faults: killing every hidden unit at update (\d+)',
                          out).group(1))
  assert PLANTED_AT_UPDATE <= planted <= PLANTED_AT_UPDATE + 64
  first = re.search(r'health: the Q-network looks collapsed at update (\d+).*'
                    r'\(probe 1 of 2', out)
  stopped = re.search(r'error: health: the Q-network looks collapsed at update '
                      r'(\d+): Q varies by .* deadest layer dense_0: 100% of its '
                      r'units dead: a collapsed network does not recover, so '
                      r'the run stops', out)
  assert first and stopped, out[-4000:]
  assert planted < int(first.group(1)) < int(stopped.group(1)) <= planted + 2 * (200 + 64)
  assert 'Traceback' not in out
  assert '[launcher] chief cannot be helped by a restart' in out
  last = [r for r in records_lib.read_progress(run_dir) if 'health/q_spread' in r][-1]
  assert last['health/dense_0/dead_share'] == 1.0
  assert last['health/q_spread_relative'] < 1e-4
