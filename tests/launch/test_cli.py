"""Bad input at the command line: one clear line, exit status 2, nothing written.
And a running task's stacks on demand (SIGUSR1)."""

import json
import os
import signal
import subprocess
import sys
import time

import portpicker
import pytest

from tests.conftest import REPO
from tests.conftest import run_module

CLUSTER = {'chief': ['127.0.0.1:1'], 'ps': ['127.0.0.1:3'], 'worker': ['127.0.0.1:5']}


@pytest.mark.parametrize('args, message', [
    (['--config=pongg'], "error: unknown config preset 'pongg'"),
    (['--config=pong', '--set=learner.batchsize=3'],
     "error: unknown config key 'learner.batchsize'"),
    (['--config=pong', '--set=actor.epsilon_end=2'],
     'error: actor.epsilon_end=2.0 is out of range; allowed: in [0, 1]'),
    (['--config=pong', '--set=env.id=ALE/Pongg-v5'],
     "error: unknown game env.id='ALE/Pongg-v5'; closest: ALE/Pong-v5"),
    (['--config=cartpole', '--num_workers=-2'],
     'error: launch.num_workers=-2 is out of range'),
    # inf passed the range check ('> 0') once; the first update was NaN.
    (['--config=pong', '--set=learner.learning_rate=inf'],
     "error: learner.learning_rate='inf' is not a valid finite number"),
    (['--config=pong_fast', '--set=run.stop_at_eval_return=nan'],
     "error: run.stop_at_eval_return='nan' is not a valid finite number or none"),
    (['--config=pong_fast', '--set=eval.quick_episodes=3'],
     'error: eval.quick_episodes=3 is out of range; allowed: 0 (off) or in '
     '[eval.parallel_envs=5, eval.episodes=30]'),
])
def test_launcher_refuses_bad_input_with_one_line(tmp_path, args, message):
  run_dir = tmp_path / 'run'
  proc = run_module('gorila_tf.launch.local', *args, f'--run_dir={run_dir}',
                    timeout=120)
  assert proc.returncode == 2
  errors = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
  assert len(errors) == 1 and errors[0].startswith(message), proc.stderr[-2000:]
  assert not run_dir.exists()


@pytest.mark.parametrize('tf_config, message', [
    ('{oops', 'error: TF_CONFIG is not valid JSON'),
    (json.dumps({'cluster': CLUSTER, 'task': {'type': 'worker', 'index': 3}}),
     "error: task index 3 is out of range for job 'worker'"),
    (json.dumps({'cluster': CLUSTER, 'task': {'type': 'boss', 'index': 0}}),
     "error: task type 'boss' does not exist"),
])
def test_train_refuses_a_malformed_tf_config(tf_config, message):
  proc = run_module('gorila_tf.train', '--config=cartpole',
                    env={'TF_CONFIG': tf_config}, timeout=120)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1].startswith(message), proc.stderr[-2000:]


def test_train_without_a_cluster_says_how_to_start_one():
  env = dict(os.environ)
  env.pop('TF_CONFIG', None)
  proc = run_module('gorila_tf.train', '--config=cartpole', env={'TF_CONFIG': ''})
  assert proc.returncode == 2
  assert 'gorila_tf.launch.local' in proc.stderr


@pytest.mark.parametrize('args, message', [
    (['--run_dir=/nonexistent', '--protocol=human_starts'],
     'error: --protocol=human_starts needs the human-play start states'),
    (['--run_dir=/nonexistent', '--protocol=sticky'],
     "error: --protocol='sticky' does not exist; allowed: noop"),
    ([], 'error: give --run_dir or --checkpoint'),
    (['--checkpoint=/nonexistent/ckpt-1'],
     "error: --checkpoint='/nonexistent/ckpt-1' does not exist"),
])
def test_evaluate_refuses_bad_input_with_one_line(args, message):
  proc = run_module('gorila_tf.tools.evaluate', *args, timeout=120)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1].startswith(message), proc.stderr[-2000:]


def test_tasks_on_one_machine_share_its_cores_for_their_ops():
  from gorila_tf.launch import topology  # pylint: disable=g-import-not-at-top
  assert topology.shared_threads(5, cores=2) == 1  # make run: 2 ps, 2 bundles, chief
  assert topology.shared_threads(5, cores=16) == 3
  assert topology.shared_threads(1, cores=16) == 16


def test_sigusr1_writes_a_running_tasks_stacks_and_it_serves_on(tmp_path):
  # A real ps task (gorila_tf.train, a tf.distribute.Server): what a person
  # does with a task that seems stuck.
  port = portpicker.pick_unused_port()
  cluster = {'chief': ['127.0.0.1:1'], 'ps': [f'127.0.0.1:{port}'],
             'worker': ['127.0.0.1:5']}
  log = open(tmp_path / 'ps.log', 'w+')
  proc = subprocess.Popen(
      [sys.executable, '-m', 'gorila_tf.train', '--config=cartpole'],
      env=dict(os.environ, TF_CONFIG=json.dumps(
          {'cluster': cluster, 'task': {'type': 'ps', 'index': 0}})),
      cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
  try:
    deadline = time.monotonic() + 60
    while 'task ps:0' not in open(tmp_path / 'ps.log').read():
      assert time.monotonic() < deadline and proc.poll() is None
      time.sleep(0.5)
    proc.send_signal(signal.SIGUSR1)
    time.sleep(2)
    assert proc.poll() is None  # dumped, still serving
    text = open(tmp_path / 'ps.log').read()
    assert 'Current thread' in text and 'gorila_tf/train.py' in text, text[-2000:]
  finally:
    proc.kill()
    proc.wait()
