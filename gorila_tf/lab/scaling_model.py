r"""A scaling model of the cluster, built from measured unit costs.

Inputs are two `gorila-bench` results: the `control` section (what one chief,
one ps and one publication cost: bench_control.py) and the `scaling` section
(the curve on emulated hosts: bench_scaling.py), whose 1-bundle point gives
the last unit cost, what one bundle does with its CPU share. From them:

  per update, on the ps tasks together:  C_ps = apply + read / sync + read / S
  per update, on the chief:              C_chief = closure / S
  one bundle at c cores:                 r(c) = r1 x c / c1   (updates/s)

and a cluster of N bundles and P ps tasks, each task on its own machine of
`node_cores`, with links of `link_gbit`, reaches

  U = min(N r(c),                        bundles
          N x link / bytes_per_update,   bundle links (replica in, gradient out)
          P x node_cores / C_ps,         ps CPU (each holds 1/P of the net)
          chief_cores / C_chief,         chief CPU (closures)
          P x link / bytes_per_update,   ps links
          chief_link / pull_bytes_per_update)  parameter publication

On one machine (the emulated hosts share `machine_cores`), the ps and chief
costs come out of what the bundles leave: U <= (M - N c1) / (C_ps + C_chief).
The model is checked against every measured point of the curve, then
projects the paper's layout (100 bundles, 31 ps) and a TFJob of K nodes.

  python -m gorila_tf.lab.scaling_model --scaling=scaling.json \
      --control=control.json --out=docs/figures
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Sequence

from absl import flags

from gorila_tf import command

FLAGS = flags.FLAGS


def define_flags():
  """Defines the command's flags, at run time: importing registers none."""
  flags.DEFINE_list('scaling', None, 'gorila-bench JSONs with a scaling section '
                    '(several runs: their points together).')
  flags.DEFINE_string('control', None, 'gorila-bench JSON with a control section.')
  flags.DEFINE_string('out', 'docs/figures', 'Folder for the plots and model.json.')


@dataclasses.dataclass(frozen=True)
class UnitCosts:
  """What one update, closure and bundle cost, measured."""

  bundle_updates_per_s: float  # r1: one bundle at its CPU share
  bundle_cores: float  # c1: that share
  frames_per_update: float  # the replay ratio in frames
  ps_ms_per_apply: float  # whole network, one ps
  ps_ms_per_read: float  # whole network, one ps
  chief_ms_per_closure: float
  network_bytes: float  # the online network
  publish_ms: float  # chief CPU per publication
  steps_per_closure: int = 4
  replica_sync_period: int = 1
  param_refresh_env_steps: int = 400  # an actor pulls parameters this often
  env_steps_per_update: float = 4.0

  @property
  def ps_ms_per_update(self) -> float:
    """All ps tasks together: the apply, the replica read, the target read."""
    return (self.ps_ms_per_apply + self.ps_ms_per_read / self.replica_sync_period
            + self.ps_ms_per_read / self.steps_per_closure)

  @property
  def chief_ms_per_update(self) -> float:
    return self.chief_ms_per_closure / self.steps_per_closure

  @property
  def ps_bytes_per_update(self) -> float:
    """Bytes through all ps links per update: replica, gradient, target."""
    return self.network_bytes * (1.0 / self.replica_sync_period + 1.0
                                 + 1.0 / self.steps_per_closure)

  @property
  def pull_bytes_per_update(self) -> float:
    """Parameter bytes the chief sends per update (actors' pulls)."""
    return self.network_bytes * self.env_steps_per_update / self.param_refresh_env_steps


def unit_costs(scaling: dict[str, Any], control: dict[str, Any]) -> UnitCosts:
  """The unit costs from the two bench sections."""
  ones = [p for p in scaling['points'] if p['bundles'] == 1 and 'updates_per_s' in p]
  one = {key: sum(p[key] for p in ones) / len(ones)  # the runs' mean
         for key in ('updates_per_s', 'frames_per_s', 'worker_cores_cap')}
  separate = [c for c in control['closures'] if c['servers'] != 'in-process']
  closure = (separate or control['closures'])[0]['chief_cpu_ms_per_closure']
  busiest = max(control['ps'], key=lambda p: p['ps_busy_apply'])
  reads = max(control['ps'], key=lambda p: p['ps_busy_read'])
  return UnitCosts(
      bundle_updates_per_s=one['updates_per_s'],
      bundle_cores=one['worker_cores_cap'],
      frames_per_update=one['frames_per_s'] / one['updates_per_s'],
      ps_ms_per_apply=busiest['ps_cpu_ms_per_apply'],
      ps_ms_per_read=reads['ps_cpu_ms_per_read'],
      chief_ms_per_closure=closure,
      network_bytes=control['network']['bytes'],
      publish_ms=control['publish'][0]['chief_cpu_ms_per_publish'])


def one_machine(costs: UnitCosts, bundles: int, machine_cores: float) -> dict[str, float]:
  """Predicted updates/s on one machine of emulated hosts, and each limit."""
  limits = {
      'bundles': bundles * costs.bundle_updates_per_s,
      'machine': ((machine_cores - bundles * costs.bundle_cores) * 1000.0
                  / (costs.ps_ms_per_update + costs.chief_ms_per_update)),
  }
  return {'updates_per_s': max(0.0, min(limits.values())), **limits}


def cluster(costs: UnitCosts, bundles: int, ps: int, node_cores: float,
            link_gbit: float, chief_cores: float = 1.0) -> dict[str, float]:
  """Predicted updates/s with every task on a machine of its own."""
  link = link_gbit * 1e9 / 8
  per_bundle = costs.bundle_updates_per_s * node_cores / costs.bundle_cores
  limits = {
      'bundles': bundles * per_bundle,
      'bundle links': bundles * link / costs.ps_bytes_per_update,
      'ps CPU': ps * node_cores * 1000.0 / costs.ps_ms_per_update,
      'chief CPU (closures)': chief_cores * 1000.0 / costs.chief_ms_per_update,
      'ps links': ps * link / costs.ps_bytes_per_update,
      "chief link (parameter pulls)": link / costs.pull_bytes_per_update,
  }
  first = min(limits, key=limits.get)
  return {'updates_per_s': limits[first], 'first_limit': first, **limits}


def best_tfjob(costs: UnitCosts, nodes: int, node_cores: float,
               link_gbit: float) -> dict[str, Any]:
  """The split of `nodes` (one for the chief) into bundles and ps tasks
  with the most updates/s, and what limits it."""
  best = None
  for ps in range(1, nodes - 1):
    point = cluster(costs, nodes - 1 - ps, ps, node_cores, link_gbit)
    if best is None or point['updates_per_s'] > best['updates_per_s']:
      best = {'nodes': nodes, 'num_bundles': nodes - 1 - ps, 'num_ps': ps,
              **point}
  return best


def check(costs: UnitCosts, points: Sequence[dict[str, Any]],
          machine_cores: float) -> list[dict[str, float]]:
  """Each measured point beside its prediction, with the relative error."""
  rows = []
  for p in points:
    if 'updates_per_s' not in p:
      continue
    predicted = one_machine(costs, p['bundles'], machine_cores)['updates_per_s']
    rows.append({'run': p.get('run', 1), 'bundles': p['bundles'], 'ps': p['ps'],
                 'measured': p['updates_per_s'], 'predicted': predicted,
                 'error': predicted / p['updates_per_s'] - 1.0})
  return rows


def plot(rows: list[dict[str, float]], costs: UnitCosts, machine_cores: float,
         out: str) -> list[str]:
  """Measured and predicted curves (PNG); returns the files written."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  os.makedirs(out, exist_ok=True)
  curve = sorted((r for r in rows if r['ps'] == 2), key=lambda r: r['bundles'])
  fig, ax = plt.subplots(figsize=(6, 4))
  n = [r['bundles'] for r in curve]
  for run in sorted({r['run'] for r in curve}):
    mine = [r for r in curve if r['run'] == run]
    ax.plot([r['bundles'] for r in mine], [r['measured'] for r in mine], 'o-',
            label=f'measured, run {run}')
  dense = list(range(1, max(n + [8]) + 1))
  ax.plot(dense, [one_machine(costs, b, machine_cores)['updates_per_s'] for b in dense],
          '--', label='model')
  ax.plot(dense, [b * costs.bundle_updates_per_s for b in dense], ':',
          label='linear (N x one bundle)')
  ax.set(xlabel='bundles (each %.2f cores)' % costs.bundle_cores,
         ylabel='updates/s', title='One machine, emulated hosts, 2 ps')
  ax.legend()
  files = [os.path.join(out, 'scaling_measured_vs_model.png')]
  fig.savefig(files[0], dpi=100, bbox_inches='tight')
  plt.close(fig)
  fig, ax = plt.subplots(figsize=(6, 4))
  sizes = [1, 2, 4, 8, 16, 32, 64, 100, 200]
  for ps, style in ((8, ':'), (31, '-'), (64, '--')):
    ax.plot(sizes, [cluster(costs, b, ps, 2.0, 10.0)['updates_per_s'] for b in sizes],
            style, label=f'{ps} ps')
  moved = dataclasses.replace(costs, steps_per_closure=16,
                              network_bytes=costs.network_bytes / 2)
  ax.plot(sizes, [cluster(moved, b, 31, 2.0, 10.0)['updates_per_s'] for b in sizes],
          '-.', label='31 ps, 16 steps per closure, bfloat16 transfers')
  ax.plot(sizes, [cluster(costs, b, 10_000, 2.0, 10.0)['bundles'] for b in sizes],
          color='grey', lw=0.8, label='bundles alone')
  ax.set(xscale='log', yscale='log', xlabel='bundles (2-core nodes, 10 Gbit/s)',
         ylabel='updates/s', title='Projection (model)')
  ax.legend()
  files.append(os.path.join(out, 'scaling_projection.png'))
  fig.savefig(files[1], dpi=100, bbox_inches='tight')
  plt.close(fig)
  return files


def main(argv):
  del argv
  runs = []
  for path in FLAGS.scaling:
    with open(path) as f:
      runs.append(json.load(f))
  with open(FLAGS.control) as f:
    control = json.load(f)['control']
  machine_cores = float(runs[0]['machine'].split(',')[1].split()[0])
  points = [dict(p, run=i + 1) for i, r in enumerate(runs)
            for p in r['scaling']['points']]
  costs = unit_costs({'points': points}, control)
  rows = check(costs, points, machine_cores)
  paper = cluster(costs, bundles=100, ps=31, node_cores=2.0, link_gbit=10.0)
  variants = {'steps_per_closure=16': dataclasses.replace(costs, steps_per_closure=16)}
  variants['+ bfloat16 transfers'] = dataclasses.replace(
      variants['steps_per_closure=16'], network_bytes=costs.network_bytes / 2)
  paper_moved = {name: cluster(c, 100, 31, 2.0, 10.0) for name, c in variants.items()}
  tfjobs = [best_tfjob(c, k, 8.0, 10.0) for k in (16, 64, 128)
            for c in (costs, variants['+ bfloat16 transfers'])]
  files = plot(rows, costs, machine_cores, FLAGS.out)
  report = {'unit_costs': dataclasses.asdict(costs), 'checked': rows,
            'paper_layout': paper, 'paper_layout_moved': paper_moved,
            'tfjob_8_core_nodes_10gbit': tfjobs, 'plots': files}
  with open(os.path.join(FLAGS.out, 'scaling_model.json'), 'w') as f:
    json.dump(report, f, indent=2)
  print(json.dumps(report, indent=2))


def cli():
  command.run(define_flags, main)


if __name__ == '__main__':
  cli()
