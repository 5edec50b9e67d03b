"""The one-process mode: the same agent, no cluster (runtime/single.py)."""

import os
import re

import tensorflow as tf

from gorila_tf.runtime import records
from tests.conftest import run_module


def test_cartpole_learns_in_one_process(run_dir):
  proc = run_module('gorila_tf.launch.local', '--config=cartpole',
                    '--topology=single', f'--run_dir={run_dir}',
                    '--progress_every_s=5', '--set=health.every_updates=500',
                    # 40k frames (the preset's) reached 127 in one run of
                    # several: CartPole's DQN varies from run to run
                    '--set=run.max_frames=60000', timeout=900)
  assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
  assert '[launcher] run dir' in proc.stdout and 'one process' in proc.stdout
  assert re.search(r'\[progress\] frames [\d,]+/60,000', proc.stdout)
  progress = records.read_progress(run_dir)
  returns = [r['charts/episodic_return'] for r in progress
             if 'charts/episodic_return' in r]
  assert max(returns) > 150, returns  # random play: ~22
  assert progress[-1]['charts/frames'] >= 60_000
  probes = [r for r in progress if 'health/q_spread_relative' in r]
  assert probes and min(r['health/q_spread_relative'] for r in probes) > 1e-4
  assert os.path.exists(os.path.join(run_dir, 'DONE'))
  assert not os.path.exists(os.path.join(run_dir, 'LEASE'))  # released
  # A checkpoint as a cluster's: the online network restores into a plain one.
  reader = tf.train.load_checkpoint(
      tf.train.latest_checkpoint(os.path.join(run_dir, 'checkpoints')))
  assert reader.get_tensor('frames/.ATTRIBUTES/VARIABLE_VALUE') >= 60_000
  assert any(name.startswith('q_network/params') for name in
             reader.get_variable_to_shape_map())
