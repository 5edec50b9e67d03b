"""Checkpoint safety and refused starts: nothing written, one clear line."""

import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from gorila_tf import config as config_lib
from gorila_tf import errors
from gorila_tf.agent import environments
from gorila_tf.runtime import checkpointing
from gorila_tf.runtime import run_dir as run_dir_lib
from tests.conftest import REPO, run_module


def cartpole():
  config = config_lib.resolve('cartpole')
  return config, environments.env_info(config.env)


def make_checkpoints(directory, values):
  """One checkpoint per value of a counter, newest last."""
  counter = tf.Variable(0, dtype=tf.int64)
  checkpoint = tf.train.Checkpoint(counter=counter)
  manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=5)
  for v in values:
    counter.assign(v)
    manager.save(checkpoint_number=v)
  return manager, checkpoint, counter


def test_a_truncated_newest_checkpoint_is_skipped_for_the_one_before(tmp_path, caplog):
  manager, checkpoint, counter = make_checkpoints(str(tmp_path), [10, 20])
  newest = manager.latest_checkpoint
  data = [p for p in os.listdir(tmp_path) if p.startswith('ckpt-20.data')][0]
  with open(tmp_path / data, 'r+b') as f:
    f.truncate(3)
  counter.assign(0)
  path = checkpointing.restore_newest_readable(manager, checkpoint)
  assert path.endswith('ckpt-10') and newest.endswith('ckpt-20')
  assert int(counter.numpy()) == 10
  assert 'ckpt-20 is unreadable' in caplog.text


def test_no_readable_checkpoint_is_refused_not_overwritten(tmp_path):
  manager, checkpoint, _ = make_checkpoints(str(tmp_path), [10])
  for name in os.listdir(tmp_path):
    if name.startswith('ckpt-10.'):
      open(tmp_path / name, 'wb').close()
  with pytest.raises(errors.ConfigError, match='none of the checkpoints in .* '
                     r'can be read \(ckpt-10\)'):
    checkpointing.restore_newest_readable(manager, checkpoint)


def garble(path):
  with open(path, 'r+b') as f:
    f.seek(0)
    f.write(b'garbage!' * 8)


def test_a_run_whose_every_checkpoint_is_damaged_is_refused_before_any_write(
    tmp_path):
  # What the chief checks before its lease, config and TensorBoard files:
  # the index of one checkpoint garbled, a tensor of the other (its checksum).
  directory = tmp_path / 'checkpoints'
  make_checkpoints(str(directory), [10, 20])
  checkpointing.check_some_readable(str(tmp_path))  # both fine
  garble(directory / 'ckpt-20.index')
  checkpointing.check_some_readable(str(tmp_path))  # ckpt-10 still reads
  data = [p for p in os.listdir(directory) if p.startswith('ckpt-10.data')][0]
  with open(directory / data, 'r+b') as f:
    f.seek(os.path.getsize(directory / data) - 8)
    f.write(b'\xff' * 8)  # the counter's bytes: only its checksum tells
  before = sorted(os.listdir(tmp_path))
  with pytest.raises(errors.ConfigError, match=r'none of the checkpoints in .* '
                     r'can be read \(ckpt-20, ckpt-10\); move them away'):
    checkpointing.check_some_readable(str(tmp_path))
  assert sorted(os.listdir(tmp_path)) == before
  checkpointing.check_some_readable(str(tmp_path / 'nothing'))  # no checkpoints


def test_a_newest_checkpoint_cut_to_16_bytes_passes_the_start_up_check(tmp_path):
  # What the chaos run's corrupt_checkpoint fault does (the reader then
  # raises IndexError, which the start-up check once let through: the chief
  # failed at every start for 27 minutes of a 30-minute chaos run).
  directory = tmp_path / 'checkpoints'
  manager, checkpoint, counter = make_checkpoints(str(directory), [10, 20])
  data = [p for p in os.listdir(directory) if p.startswith('ckpt-20.data')][0]
  with open(directory / data, 'r+b') as f:
    f.truncate(16)
  checkpointing.check_some_readable(str(tmp_path))  # ckpt-10 reads
  counter.assign(0)
  assert checkpointing.restore_newest_readable(manager, checkpoint).endswith('ckpt-10')
  assert int(counter.numpy()) == 10


def test_no_checkpoint_means_a_fresh_start(tmp_path):
  manager, checkpoint, _ = make_checkpoints(str(tmp_path), [])
  assert checkpointing.restore_newest_readable(manager, checkpoint) is None


def test_checkpoint_of_another_model_is_refused_naming_the_difference(tmp_path):
  config, info = cartpole()
  run_dir_lib.record_signature(str(tmp_path),
                                 run_dir_lib.model_signature(config, info, 2))
  run_dir_lib.check_compatible(
      str(tmp_path), run_dir_lib.model_signature(config, info, 2))  # same: fine
  other = config_lib.apply_overrides(config, ['network.mlp_layers=32'])
  with pytest.raises(errors.ConfigError,
                     match=r"network.mlp_layers: checkpoint \[64, 64\], this run \[32\]"):
    run_dir_lib.check_compatible(
        str(tmp_path), run_dir_lib.model_signature(other, info, 2))
  with pytest.raises(errors.ConfigError,
                     match=r'num_ps \(shard count\): checkpoint 2, this run 3'):
    run_dir_lib.check_compatible(
        str(tmp_path), run_dir_lib.model_signature(config, info, 3))


def test_all_finite_spots_a_nan_anywhere():
  assert checkpointing.all_finite([np.ones(3), np.zeros((2, 2))])
  assert not checkpointing.all_finite([np.ones(3), np.array([1.0, np.nan])])
  assert not checkpointing.all_finite([np.array([np.inf])])


def tf_config(task_type, index, ports):
  cluster = {'chief': [f'127.0.0.1:{ports[0]}'], 'ps': [f'127.0.0.1:{ports[1]}'],
             'worker': [f'127.0.0.1:{ports[2]}']}
  return json.dumps({'cluster': cluster, 'task': {'type': task_type, 'index': index}})


def free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(('127.0.0.1', 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


@pytest.mark.e2e
def test_a_port_already_in_use_is_refused():
  with socket.socket() as busy:
    busy.bind(('', 0))
    busy.listen()
    port = busy.getsockname()[1]
    ports = free_ports(3)
    ports[1] = port
    proc = run_module('gorila_tf.train', '--config=cartpole',
                      env={'TF_CONFIG': tf_config('ps', 0, ports)}, timeout=120)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1].startswith(
      f'error: port {port} for ps:0 (127.0.0.1:{port}) is already in use'), proc.stderr[-2000:]


@pytest.mark.e2e
def test_an_unreachable_ps_is_reported_after_bounded_retries(tmp_path):
  run_dir = tmp_path / 'run'
  ports = free_ports(3)
  proc = run_module('gorila_tf.train', '--config=cartpole', f'--run_dir={run_dir}',
                    '--set=run.connect_timeout_s=3',
                    env={'TF_CONFIG': tf_config('chief', 0, ports)}, timeout=120)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1].startswith(
      f'error: ps:0 at 127.0.0.1:{ports[1]} is not reachable after 3 s'), proc.stderr[-2000:]
  assert not run_dir.exists()


@pytest.mark.e2e
def test_a_chief_on_a_run_dir_of_another_model_is_refused(tmp_path):
  config, info = cartpole()
  run_dir = tmp_path / 'run'
  run_dir.mkdir()
  run_dir_lib.record_signature(str(run_dir),
                                 run_dir_lib.model_signature(config, info, 1))
  before = sorted(os.listdir(run_dir))
  proc = run_module('gorila_tf.train', '--config=cartpole', f'--run_dir={run_dir}',
                    '--set=network.dueling=true',
                    env={'TF_CONFIG': tf_config('chief', 0, free_ports(3))},
                    timeout=120)
  assert proc.returncode == 2
  assert 'network.dueling: checkpoint False, this run True' in proc.stderr
  assert sorted(os.listdir(run_dir)) == before


def mount_namespace_available():
  if shutil.which('unshare') is None or os.geteuid() != 0:
    return False
  return subprocess.run(['unshare', '-m', 'true'], capture_output=True).returncode == 0


needs_mounts = pytest.mark.skipif(not mount_namespace_available(),
                                  reason='needs root and mount namespaces')


def launch_in_tmpfs(tmp_path, mount_options):
  """Runs the launcher with its run dir on a private tmpfs mount."""
  mount = tmp_path / 'mnt'
  mount.mkdir()
  script = (f'mount -t tmpfs -o {mount_options} none {mount} && '
            f'{sys.executable} -m gorila_tf.launch.local --config=cartpole '
            f'--run_dir={mount}/run; code=$?; ls -A {mount}; exit $code')
  return subprocess.run(['unshare', '-m', 'sh', '-c', script], cwd=REPO,
                        capture_output=True, text=True, timeout=120)


@needs_mounts
def test_a_read_only_run_dir_is_refused(tmp_path):
  proc = launch_in_tmpfs(tmp_path, 'ro,size=16m')
  assert proc.returncode == 2
  assert "error: run directory" in proc.stderr
  assert 'is not writable: Read-only file system' in proc.stderr
  assert proc.stdout.strip() == ''  # nothing written in the mount


@needs_mounts
def test_a_full_disk_is_refused_before_anything_is_written(tmp_path):
  proc = launch_in_tmpfs(tmp_path, 'size=2m')
  assert proc.returncode == 2
  assert 'MiB free; at least 100 MiB is needed (run.min_free_disk_mb)' in proc.stderr
  assert proc.stdout.strip() == ''  # the run dir was removed again


@needs_mounts
def test_a_summary_writer_opened_on_a_full_disk_says_disk_full(tmp_path):
  # A chaos run's chief met the disk filling between its start-up check and
  # opening its summaries: TensorFlow's ResourceExhaustedError, a traceback
  # and a restart, instead of one line and a stop.
  mount = tmp_path / 'mnt'
  mount.mkdir()
  opens = ('from gorila_tf import errors; from gorila_tf.runtime import metrics\n'
           'try:\n'
           f'  metrics.SummaryWriter("{mount}/run")\n'
           'except errors.DiskFull as e:\n'
           '  print("DiskFull:", e)\n')
  script = (f'mount -t tmpfs -o size=1m none {mount} && mkdir {mount}/run && '
            f'(cat /dev/zero > {mount}/filler 2>/dev/null; true) && '
            f'{sys.executable} -c \'{opens}\'')
  proc = subprocess.run(['unshare', '-m', 'sh', '-c', script], cwd=REPO,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip() == (f'DiskFull: no space left writing in {mount}/run '
                                 '(No space left on device)'), proc.stderr[-2000:]
