r"""The learning check: does a preset learn on every seed, or does it die?

  python -m gorila_tf.lab.bench --sections=learning --config=pong_fast \
      --learning_seeds=0,1,2,3,4 --learning_frames=300000 --out=learning.json
  python -m gorila_tf.lab.bench --sections=learning \
      --learning_run_dirs=runs/a,runs/b          # judge runs already made

Run it before changing anything on the learning path (the network, the
update, the optimizer, the replay): one local cluster per seed, one after
another (~12 minutes per seed at 300k Pong frames on 2 cores). Each run is
then judged from its own files, so runs of older versions of the package can
be judged the same way:

  health   every checkpoint's online network is probed on the run's probe
           states (health.py): dead share per layer, Q spread; collapsed if
           the newest checkpoints are (health.collapse_probes of them)
  learning the training return and TD loss of the run's last summaries

A seed passes when its network has not collapsed and its newest checkpoint
tells states apart: Q varies across the probe states by at least
LEARNING_Q_SPREAD of its mean |Q|. (Pong at 300k frames, 2026-12-04: runs
that went on to learn had 0.6-0.8; one that was nearly dead had 2.5e-4, with
97 % of its first layer dead.)
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import tempfile
import time
from typing import Any, Sequence

import numpy as np

from gorila_tf import config as config_lib
from gorila_tf import launch
from gorila_tf.agent import environments
from gorila_tf.runtime import records as records_lib
from gorila_tf.runtime import run_dir as run_dir_lib

LAST_SUMMARIES = 10  # the training return is the mean of the last ones that have it
LEARNING_Q_SPREAD = 0.01  # a network that has begun to learn tells states apart


def checkpoint_paths(run_dir: str) -> list[str]:
  """The run's checkpoints, oldest first (prefixes, as tf.train takes them)."""
  paths = glob.glob(os.path.join(run_dir, 'checkpoints', 'ckpt-*.index'))
  number = lambda p: int(re.search(r'ckpt-(\d+)\.index$', p).group(1))
  return [p[:-len('.index')] for p in sorted(paths, key=number)]


def probe_checkpoints(run_dir: str, config: config_lib.GorilaConfig) -> list[dict]:
  """Health figures of every checkpoint's online network."""
  from gorila_tf.runtime import evaluator  # pylint: disable=g-import-not-at-top
  from gorila_tf.agent import health  # pylint: disable=g-import-not-at-top
  info = environments.env_info(config.env)
  states = health.probe_states(config.env, config.health.probe_states,
                               config.run.seed)
  rows = []
  for path in checkpoint_paths(run_dir):
    q_net, updates, frames = evaluator.restore_online_network(path, config, info)
    figures = health.HealthProbe(q_net.spec, states, q_net.read).measure(updates)
    rows.append({'frames': frames, 'updates': updates,
                 'dead': figures.dead, 'q_spread': figures.q_spread,
                 'q_spread_relative': figures.q_spread_relative})
  return rows


def last_mean(records: Sequence[dict], key: str) -> float:
  values = [r[key] for r in records if key in r][-LAST_SUMMARIES:]
  return float(np.mean(values)) if values else float('nan')


def judge(probes: list[dict], health: config_lib.HealthConfig) -> dict[str, Any]:
  """Collapsed (the newest `collapse_probes` probes flat) and the end state."""
  flat = [p['q_spread_relative'] < health.min_q_spread for p in probes]
  newest = flat[-health.collapse_probes:]
  collapsed = len(newest) == health.collapse_probes and all(newest)
  first_flat = next((p['frames'] for p, f in zip(probes, flat) if f), None)
  end = probes[-1] if probes else {'dead': {}, 'q_spread_relative': float('nan')}
  return {'collapsed': collapsed, 'first_flat_frames': first_flat,
          'dead_at_end': end['dead'],
          'q_spread_relative_at_end': end['q_spread_relative'],
          'passed': bool(probes) and not collapsed
                    and end['q_spread_relative'] >= LEARNING_Q_SPREAD}


def analyze_run(run_dir: str) -> dict[str, Any]:
  """One run's row of the learning table, from its files alone."""
  config = run_dir_lib.read_config(run_dir)
  if config is None:
    return {'run_dir': run_dir, 'error': 'no config.json'}
  records = records_lib.read_progress(run_dir)
  probes = probe_checkpoints(run_dir, config)
  row = {'run_dir': run_dir, 'seed': config.run.seed,
         'frames': records[-1]['charts/frames'] if records else 0,
         'training_return': last_mean(records, records_lib.TAGS['episodic_return']),
         'td_loss': last_mean(records, records_lib.TAGS['td_loss']),
         'probes': probes}
  row.update(judge(probes, config.health))
  return row


def run_seed(config_name: str, overrides: Sequence[str], seed: int,
             frames: int, run_dir: str) -> int:
  """Trains one seed to `frames` with the local launcher; its exit status."""
  wall = max(600.0, frames / 100.0)  # a stuck run ends: 100 frames/s at least
  command = launch.local_command(
      config_name, run_dir,
      [*overrides, f'run.seed={seed}', f'run.max_frames={frames}'],
      # Judged from its checkpoints, not by an evaluator (pong_fast has one).
      f'--max_wall_s={wall}', '--progress=off', '--noevaluator')
  with open(os.path.join(os.path.dirname(run_dir),
                         os.path.basename(run_dir) + '.console'), 'w') as log:
    return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode


def measure(config_name: str, overrides: Sequence[str], seeds: Sequence[int],
            frames: int, run_dirs: Sequence[str] = (),
            keep_dir: str | None = None) -> dict[str, Any]:
  """Runs (or only judges, given `run_dirs`) the seeds; one row each."""
  rows = []
  if not run_dirs:
    base = keep_dir or tempfile.mkdtemp(prefix='gorila-learning-')
    for seed in seeds:
      run_dir = os.path.join(base, f'{config_name}_seed{seed}')
      start = time.monotonic()
      status = run_seed(config_name, overrides, seed, frames, run_dir)
      row = analyze_run(run_dir)
      row.update(exit_status=status, minutes=(time.monotonic() - start) / 60)
      rows.append(row)
  else:
    rows = [analyze_run(d) for d in run_dirs]
  return {'frames': frames, 'rows': rows,
          'passed': sum(r.get('passed', False) for r in rows),
          'seeds': len(rows)}


def table(result: dict[str, Any]) -> str:
  """The learning section as text: one line per run."""
  lines = ['learning check: run | seed | frames | collapsed | dead share at end '
           '(per layer) | Q spread / |Q| | TD loss | training return | pass']
  for r in result['rows']:
    if 'error' in r:
      lines.append(f'  {r["run_dir"]}: {r["error"]}')
      continue
    dead = ' '.join(f'{k} {v:.0%}' for k, v in r['dead_at_end'].items())
    lines.append(
        f'  {os.path.basename(r["run_dir"].rstrip("/"))} | {r["seed"]} | '
        f'{int(r["frames"]):,} | {"YES" if r["collapsed"] else "no"} | {dead} | '
        f'{r["q_spread_relative_at_end"]:.3g} | {r["td_loss"]:.4f} | '
        f'{r["training_return"]:.2f} | {"pass" if r["passed"] else "FAIL"}')
  lines.append(f'  {result["passed"]} of {result["seeds"]} passed')
  return '\n'.join(lines)
