"""What the evaluator costs training, and how far its scores lag, from a run's files.

  python docs/data/evaluator_cost.py <run_dir> [--out=file.json]

Reads <run_dir>/logs/evaluator.log (each "eval of <checkpoint>: ... (N s)"
line: when an evaluation ended and how long it took) and progress.jsonl
(the chief's frames/s every summary window, with its wall-clock time).
Training frames/s is split between the windows during which an
evaluation ran and the others; their ratio is the evaluator's cost (the
same run, the same minutes, so the learner's own speed-ups cancel out).
The lag of a row is the seconds from its checkpoint's write (the chief's
checkpoint log line) to the end of its evaluation.
"""

import json
import re
import sys
import datetime

LOG_TIME = re.compile(r'^[IWE](\d{4}) (\d\d:\d\d:\d\d\.\d+)')
EVAL = re.compile(r'eval of (\S+): .* \((\d+) s\)$')
SAVED = re.compile(r'checkpoint (\S+) \(')


def _stamp(line, year):
  m = LOG_TIME.match(line)
  if not m:
    return None
  when = datetime.datetime.strptime(f'{year}{m.group(1)} {m.group(2)}',
                                    '%Y%m%d %H:%M:%S.%f')
  return when.replace(tzinfo=datetime.timezone.utc).timestamp()


def evaluations(run_dir, year):
  """[(start, end, checkpoint)] of every evaluation in the evaluator's log."""
  spans = []
  with open(f'{run_dir}/logs/evaluator.log') as f:
    for line in f:
      m = EVAL.search(line.rstrip())
      end = _stamp(line, year)
      if m and end:
        spans.append((end - float(m.group(2)), end, m.group(1)))
  return spans


def checkpoint_times(run_dir, year):
  times = {}
  with open(f'{run_dir}/logs/chief.log') as f:
    for line in f:
      m = SAVED.search(line)
      when = _stamp(line, year)
      if m and when and 'ckpt-' in m.group(1):
        times[m.group(1)] = when
  return times


def measure(run_dir, year=None):
  year = year or datetime.date.today().year
  spans = evaluations(run_dir, year)
  with open(f'{run_dir}/progress.jsonl') as f:
    records = [json.loads(l) for l in f if l.strip()]
  windows = [(r['time'], r['charts/frames_per_second']) for r in records
             if 'charts/frames_per_second' in r and r.get('learners/updates', 0) > 0]
  during = [fps for t, fps in windows if any(s <= t - 5 <= e for s, e, _ in spans)]
  other = [fps for t, fps in windows if not any(s <= t - 5 <= e for s, e, _ in spans)]
  mean = lambda xs: sum(xs) / len(xs) if xs else float('nan')
  saved = checkpoint_times(run_dir, year)
  lags = [round(end - saved[c]) for _, end, c in spans if c in saved]
  return {'evaluations': len(spans),
          'eval_seconds': [round(e - s) for s, e, _ in spans],
          'lag_s_checkpoint_to_row': lags,
          'windows_while_evaluating': len(during), 'windows_otherwise': len(other),
          'fps_while_evaluating': mean(during), 'fps_otherwise': mean(other),
          'ratio': mean(during) / mean(other) if other and during else None,
          'share_of_time_evaluating': len(during) / max(len(windows), 1),
          'fps_overall': mean(during + other)}


if __name__ == '__main__':
  result = measure(sys.argv[1])
  text = json.dumps(result, indent=1)
  print(text)
  for arg in sys.argv[2:]:
    if arg.startswith('--out='):
      with open(arg[len('--out='):], 'w') as f:
        f.write(text + '\n')
