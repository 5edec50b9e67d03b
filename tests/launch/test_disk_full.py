"""A full disk under the run directory: the run stops with one line saying
how much space is needed, no checkpoint is lost, and the same command resumes
once there is space. On a small tmpfs (root and mount; skipped elsewhere)."""

import os
import re
import shutil
import subprocess

import pytest
import tensorflow as tf

from gorila_tf.lab import bench_chaos
from tests.launch.test_e2e import Launcher

pytestmark = pytest.mark.e2e


@pytest.fixture
def small_disk(tmp_path):
  if os.geteuid() != 0 or shutil.which('mount') is None:
    pytest.skip('needs root and mount for a small tmpfs')
  disk = tmp_path / 'disk'
  disk.mkdir()
  mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64m', 'tmpfs',
                            str(disk)], capture_output=True, text=True)
  if mounted.returncode:
    pytest.skip(f'cannot mount a tmpfs: {mounted.stderr.strip()}')
  yield disk
  subprocess.run(['umount', '-l', str(disk)], check=False)


def test_a_full_disk_stops_the_run_in_one_line_and_the_same_command_resumes(small_disk):
  run_dir = str(small_disk / 'run')
  flags = ('--set=run.max_frames=10000000', '--set=run.checkpoint_every_s=5',
           '--set=run.min_free_disk_mb=1')
  launcher = Launcher(run_dir, *flags)
  launcher.wait_for(r'checkpoint \S+/ckpt-\d+', timeout=240)
  bench_chaos.fill_disk(str(small_disk))
  code, out = launcher.finish(timeout=240)
  assert code == 2, out[-4000:]
  stopped = re.search(
      r'error: no space left writing .*: training stopped and nothing was lost; '
      r'free at least (\d+) MB in \S+ \(two checkpoints, or '
      r'run.min_free_disk_mb\) and run the same command again: the newest '
      r'checkpoint (\S+) is intact and the run resumes from it', out)
  assert stopped, out[-4000:]
  for noise in ('Traceback', 'Fatal Python error'):
    assert noise not in out, out[-4000:]
  newest = tf.train.latest_checkpoint(os.path.join(run_dir, 'checkpoints'))
  assert newest == stopped.group(2)
  tf.train.load_checkpoint(newest)  # readable
  (small_disk / 'filler').unlink()
  again = Launcher(run_dir, *flags)
  resumed = again.wait_for(r'resumed from (\S+) at (\d+) updates', timeout=240)
  assert resumed.group(1) == newest
  again.proc.terminate()
  code, _ = again.finish(timeout=240)
  assert code == 130
