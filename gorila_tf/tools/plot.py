r"""Learning curves and a results table from runs' own files.

  python -m gorila_tf.tools.plot --run_dirs=runs/pong1,runs/pong2 --out=plots/

writes, for each game among the runs:
  <out>/<game>_frames.png   evaluation score against training frames
  <out>/<game>_updates.png  evaluation score against learner updates
  <out>/<game>_wall.png     evaluation score against minutes of training
with the published DQN and Gorila scores (no-op starts) as reference lines,
other recipes' published points (reference.ANCHORS: when Tianshou's,
RLlib's and CleanRL's DQNs reached their Pong scores) on each axis, and
across all runs `<out>/results.csv` and `results.md` (each run's last
evaluation, human-normalized, next to the paper's numbers), and with
`--scores=-10,0,10,18` `<out>/time_to_score.md`: the frames, updates and
minutes at which each run's evaluation first reached each score.

Reads `eval.jsonl` (the evaluator's scores; each row's `wall_time_s` is the
seconds of training at which its checkpoint was written) and
`progress.jsonl` (the chief's wall time per frame, for rows without it); a
run without evaluations is plotted from its training returns, labelled as
such.
"""

from __future__ import annotations

import collections
import os
import sys

from absl import flags
import numpy as np

from gorila_tf import command
from gorila_tf import exit_codes
from gorila_tf import reference
from gorila_tf.runtime import records
from gorila_tf.runtime import run_dir as run_dir_lib

FLAGS = flags.FLAGS


def define_flags():
  """Defines the command's flags, at run time: importing registers none."""
  flags.DEFINE_list('run_dirs', [], 'Run directories to plot.')
  flags.DEFINE_string('out', 'plots', 'Directory for the PNGs and the table.')
  flags.DEFINE_list('scores', [], 'Scores for the time-to-score table, e.g. '
                    '-10,0,10,18 (empty: no table).')


def curve(run_dir: str) -> dict:
  """A run's score curve: frames, updates, minutes of training, scores."""
  progress = records.read_progress(run_dir)
  evals = records.read_progress(run_dir, 'eval.jsonl')
  frames_axis = np.array([r['step'] for r in progress], float)
  minutes_axis = np.array([r.get('wall_time_s', 0.0) for r in progress]) / 60
  updates_axis = np.array([r.get('learners/updates', np.nan) for r in progress],
                          float)
  if evals:
    rows = evals
    scores = np.array([r['eval/episodic_return'] for r in evals], float)
    kind = 'evaluation (no-op starts, ε=0.05)'
  else:
    rows = [r for r in progress if 'charts/episodic_return' in r]
    scores = np.array([r['charts/episodic_return'] for r in rows], float)
    kind = 'training episodes (ε-greedy)'
  frames = np.array([r['step'] for r in rows], float)

  def along(axis, key, scale=1.0):
    """Each row's own value, else the chief's at that frame."""
    read = (np.interp(frames, frames_axis, axis) if len(frames_axis)
            else np.full_like(frames, np.nan))
    own = np.array([r.get(key, np.nan) for r in rows], float) / scale
    return np.where(np.isnan(own), read, own)

  return {'frames': frames, 'scores': scores, 'kind': kind,
          'minutes': along(minutes_axis, 'wall_time_s', 60.0),
          'updates': along(updates_axis, 'updates'),
          'last_eval': evals[-1] if evals else None}


AXES = (('frames', 'training frames', 'frames'),
        ('updates', 'learner updates (batch 32 unless said)', 'updates'),
        ('minutes', 'minutes of training', 'wall'))


def plot_game(env_id: str, runs: dict[str, dict], out_dir: str) -> list[str]:
  """The three PNGs of one game; returns their paths."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  scores = reference.for_env_id(env_id)
  stem = env_id.removeprefix('ALE/').replace('/', '_')
  paths = []
  for axis, label, name in AXES:
    figure, ax = plt.subplots(figsize=(7, 4.5))
    for run_name, c in runs.items():
      ax.plot(c[axis], c['scores'], marker='o', markersize=3,
              label=f'{run_name} — {c["kind"]}')
    published = reference.learning_curve(env_id)
    if published is not None and axis == 'frames':
      label_, frames_, returns_ = published
      ax.plot(frames_, returns_, color='tab:purple', linestyle='-', marker='s',
              markersize=3, alpha=0.6, label=label_)
      ax.set_xlim(0, max(max(c['frames'].max() if len(c['frames']) else 0
                             for c in runs.values()) * 1.05, 1e6))
    ours = max((float(np.nanmax(c[axis])) for c in runs.values()
                if len(c[axis])), default=0.0)
    points = [a for a in reference.anchors(env_id) if a.get(axis) is not None]
    # The axis reaches the nearest anchor; one far beyond it (CleanRL's 755k
    # updates) is named in the legend instead of squeezing the curves.
    right = max([ours] + [min(a[axis] for a in points)] if points else [ours]) * 1.2
    for anchor in points:
      x = anchor[axis]
      if x <= right or axis == 'frames':  # frames: the published curve's axis
        ax.plot([x], [anchor['score']], marker='*', markersize=9,
                linestyle='none', label=anchor['label'])
      else:
        ax.plot([], [], marker='*', linestyle='none',
                label=f'{anchor["label"]}: at {x:,.0f}, off this axis')
    if points and axis != 'frames':
      ax.set_xlim(0, right)
    if scores is not None:
      ax.axhline(scores.dqn_nature_noop, color='gray', linestyle='--',
                 label=f'DQN (Mnih et al. 2015) {scores.dqn_nature_noop:g}')
      ax.axhline(scores.gorila_noop, color='black', linestyle=':',
                 label=f'Gorila (Nair et al. 2015) {scores.gorila_noop:g}')
      ax.axhline(scores.human_noop, color='tab:green', linestyle='-.', alpha=0.5,
                 label=f'human {scores.human_noop:g}')
    ax.set_xlabel(label)
    ax.set_ylabel('episode return')
    ax.set_title(f'{env_id}')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc='center right')
    figure.tight_layout()
    path = os.path.join(out_dir, f'{stem}_{name}.png')
    figure.savefig(path, dpi=110)
    plt.close(figure)
    paths.append(path)
  return paths


def time_to_scores(c: dict, targets: list[float]) -> list[dict]:
  """Per target: the frames, updates and minutes of the first score >= it
  (None where it was not reached)."""
  rows = []
  for target in targets:
    reached = np.flatnonzero(c['scores'] >= target)
    first = int(reached[0]) if len(reached) else None
    rows.append({'score': target, **{
        key: None if first is None else float(c[key][first])
        for key in ('frames', 'updates', 'minutes')}})
  return rows


def time_to_score_table(runs: dict[str, dict], targets: list[float]) -> str:
  """Markdown: one row per run, one column per target score."""
  lines = ['| run | ' + ' | '.join(f'first ≥ {t:g}' for t in targets) + ' |',
           '|---|' + '---|' * len(targets)]
  for name, c in runs.items():
    cells = [('not reached (best %g)' % max(c['scores'], default=float('nan'))
              if r['frames'] is None else
              f'{r["frames"] / 1e6:.2f}M frames, {r["updates"] / 1e3:.0f}k '
              f'updates, {r["minutes"]:.0f} min')
             for r in time_to_scores(c, targets)]
    lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def results_rows(run_dirs: list[str]) -> list[dict]:
  rows = []
  for run_dir in run_dirs:
    config = run_dir_lib.read_config(run_dir)
    last = curve(run_dir)['last_eval']
    if config is None:
      continue
    rows.append(reference.table_row(
        config.env.id, last['eval/episodic_return'] if last else None,
        last.get('eval/episodic_return_stderr') if last else None,
        last.get('episodes') if last else None, frames=last['step'] if last else None))
  return rows


def main(argv):
  del argv
  missing = [d for d in FLAGS.run_dirs if run_dir_lib.read_config(d) is None]
  if not FLAGS.run_dirs or missing:
    print(f'error: --run_dirs needs run directories with a config.json; not one: '
          f'{", ".join(missing) or "(none given)"}', file=sys.stderr)
    return exit_codes.BAD_INPUT
  try:
    targets = [float(t) for t in FLAGS.scores]
  except ValueError:
    print(f'error: --scores={",".join(FLAGS.scores)} is not a list of numbers '
          '(e.g. -10,0,10,18)', file=sys.stderr)
    return exit_codes.BAD_INPUT
  os.makedirs(FLAGS.out, exist_ok=True)
  by_game = collections.defaultdict(dict)
  for run_dir in FLAGS.run_dirs:
    config = run_dir_lib.read_config(run_dir)
    by_game[config.env.id][os.path.basename(run_dir.rstrip('/'))] = curve(run_dir)
  for env_id, runs in by_game.items():
    for path in plot_game(env_id, runs, FLAGS.out):
      print(path)
  rows = results_rows(FLAGS.run_dirs)
  reference.write_table(rows, os.path.join(FLAGS.out, 'results.csv'),
                        os.path.join(FLAGS.out, 'results.md'))
  print(os.path.join(FLAGS.out, 'results.md'))
  if targets:
    runs = {name: c for game in by_game.values() for name, c in game.items()}
    path = os.path.join(FLAGS.out, 'time_to_score.md')
    with open(path, 'w') as f:
      f.write(time_to_score_table(runs, targets))
    print(path)
  return exit_codes.OK


def cli():
  command.run(define_flags, main)


if __name__ == '__main__':
  cli()
