"""The benchmark's report: the issue's target ratios and the printed table.

Kept apart from bench.py (which defines command-line flags) so that tests and
tools can use it without importing a main module.
"""

from __future__ import annotations

import json
from typing import Any


def ratios(results: dict[str, Any]) -> dict[str, float]:
  """The issue's targets as ratios measured in this one run."""
  out = {}
  emulator, actor = results.get('emulator'), results.get('actor')
  if emulator and actor:
    out['actor_over_emulator'] = actor['env_steps_per_s'] / emulator['env_steps_per_s']
  if 'learner' in results:
    out['pss_over_single_process'] = results['learner']['pss_over_single']
  e2e, peers = results.get('e2e', {}), results.get('peers', {})
  for name, peer in peers.items():
    if 'env_steps_per_s' in peer and 'env_steps_per_s' in e2e:
      out[f'e2e_over_{name}'] = e2e['env_steps_per_s'] / peer['env_steps_per_s']
  if 'memory' in results:
    out['replay_kb_per_transition'] = (
        results['memory']['rss_bytes_per_transition'] / 1024)
  return out


def table(results: dict[str, Any]) -> str:
  lines = [f'gorila_tf bench — {results["date"]} — {results["machine"]}', '']
  for section, values in results.items():
    if isinstance(values, dict):
      lines.append(f'[{section}]')
      for key, value in values.items():
        shown = (f'{value:,.1f}' if isinstance(value, float) else
                 json.dumps(value) if isinstance(value, dict) else str(value))
        lines.append(f'  {key:<40} {shown}')
  return '\n'.join(lines)
