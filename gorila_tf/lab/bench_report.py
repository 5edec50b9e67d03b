"""The benchmark's report: the issue's target ratios and the printed table.

Kept apart from bench.py (which defines command-line flags) so that tests and
tools can use it without importing a main module.
"""

from __future__ import annotations

import json
from typing import Any

from gorila_tf.lab import bench_bad_input
from gorila_tf.lab import bench_chaos
from gorila_tf.lab import bench_control
from gorila_tf.lab import bench_learning
from gorila_tf.lab import bench_limit
from gorila_tf.lab import bench_startup


def machine_limit(results: dict[str, Any]) -> float | None:
  """Updates/s this machine allows the whole system at the e2e replay ratio.

  The single-process learner's rate L (updates/s with the machine to itself)
  less the actors' share: an update also needs `r` env steps of acting, each
  costing 1/A of the machine (A: the actors' env steps/s with the machine to
  themselves). Per update the machine spends 1/L + r/A, so the limit is
  1 / (1/L + r/A) = L x (1 - actors' CPU share), share = (r/A) / (1/L + r/A).
  """
  learner, actor, e2e = (results.get(k, {}) for k in ('learner', 'actor', 'e2e'))
  rate = learner.get('single_process_updates_per_s')
  steps = actor.get('env_steps_per_s')
  ratio = e2e.get('env_steps_per_update')
  if not (rate and steps and ratio):
    return None
  return 1.0 / (1.0 / rate + ratio / steps)


def ratios(results: dict[str, Any]) -> dict[str, float]:
  """The issue's targets as ratios measured in this one run."""
  out = {}
  emulator, actor = results.get('emulator'), results.get('actor')
  if emulator and actor:
    out['actor_over_emulator'] = actor['env_steps_per_s'] / emulator['env_steps_per_s']
  if 'pss_over_single' in results.get('learner', {}):
    out['pss_over_single_process'] = results['learner']['pss_over_single']
  e2e, peers = results.get('e2e', {}), results.get('peers', {})
  for name, peer in peers.items():
    # Updates/s at the same replay ratio, after learning started (a peer's
    # whole-run env steps/s include its warm-up): the fair comparison.
    steady = peer.get('train_updates_per_s', peer.get('updates_per_s'))
    if steady and 'updates_per_s' in e2e:
      out[f'e2e_updates_over_{name}'] = e2e['updates_per_s'] / steady
  limit = machine_limit(results)
  if limit:
    out['machine_limit_updates_per_s'] = limit
    if 'updates_per_s' in e2e:
      out['e2e_over_machine_limit'] = e2e['updates_per_s'] / limit
  if 'memory' in results:
    out['replay_kb_per_transition'] = (
        results['memory']['rss_bytes_per_transition'] / 1024)
  return out


SCALING_COLUMNS = (  # (key, heading, format)
    ('bundles', 'bundles', '{:d}'), ('ps', 'ps', '{:d}'),
    ('frames_per_s', 'frames/s', '{:,.0f}'),
    ('updates_per_s', 'updates/s', '{:.1f}'),
    ('updates_efficiency', 'eff.', '{:.2f}'),
    ('closures_per_s', 'closures/s', '{:.1f}'),
    ('chief_cores', 'chief cores', '{:.2f}'),
    ('ps_mbytes_per_s', 'MB/s per ps', None),
    ('replay_inserts_per_s', 'inserts/s', '{:,.0f}'),
    ('replay_samples_per_s', 'samples/s', '{:,.0f}'),
    ('staleness_p50', 'stale p50', '{:.0f}'),
    ('staleness_p90', 'stale p90', '{:.0f}'),
    ('bottleneck', 'first bottleneck', '{}'),
)


def scaling_table(points: list[dict[str, Any]]) -> str:
  """The scaling section as a markdown table, one row per cluster."""
  lines = ['| ' + ' | '.join(h for _, h, _ in SCALING_COLUMNS) + ' |',
           '|' + '---|' * len(SCALING_COLUMNS)]
  for p in points:
    cells = []
    for key, _, fmt in SCALING_COLUMNS:
      value = p.get(key)
      if value is None:
        cells.append(p.get('error', '-') if key == 'bottleneck' else '-')
      elif fmt is None:  # per ps task
        cells.append(' '.join(f'{v:.0f}' for v in value.values()))
      else:
        cells.append(fmt.format(value))
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def table(results: dict[str, Any]) -> str:
  lines = [f'gorila_tf bench — {results["date"]} — {results["machine"]}', '']
  for section, values in results.items():
    if section == 'scaling' and isinstance(values, dict):
      lines += [f'[scaling] each bundle capped at {values["worker_cores_cap"]} '
                'cores', scaling_table(values['points'])]
    elif section == 'control' and isinstance(values, dict):
      lines += bench_control.report_lines(values)
    elif section == 'chaos' and isinstance(values, dict) and 'invariants' in values:
      lines.append(bench_chaos.table(values))
    elif section == 'bad_input' and isinstance(values, dict) and 'cases' in values:
      lines.append(bench_bad_input.table(values))
    elif section == 'startup' and isinstance(values, dict) and 'median_s' in values:
      lines.append(bench_startup.table(values))
    elif section == 'limit' and isinstance(values, dict) and 'rows' in values:
      lines.append(bench_limit.table(values))
    elif section == 'learning' and isinstance(values, dict):
      lines.append(bench_learning.table(values))
    elif isinstance(values, dict):
      lines.append(f'[{section}]')
      for key, value in values.items():
        shown = (f'{value:,.1f}' if isinstance(value, float) else
                 json.dumps(value) if isinstance(value, dict) else str(value))
        lines.append(f'  {key:<40} {shown}')
  return '\n'.join(lines)
