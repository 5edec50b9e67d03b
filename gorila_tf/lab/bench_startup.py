"""Where a launch's start-up goes: from `gorila-launch` to the first update.

    python -m gorila_tf.lab.bench --sections=startup --config=cartpole

Launches the local cluster `STARTUP_LAUNCHES` times (fresh run directories),
notes when each milestone line reaches the launcher's console, stops the
cluster at its first applied update, and reports each milestone's median
second since the launch, with the console lines printed before the first
update. The milestones, in the order a cluster passes them:

  tasks started    the launcher has started every task (its "started" lines)
  ps serving       the last ps serves (TensorFlow imported, its server up)
  bundles up       the last bundle's Reverb server and learner server are up
  chief connected  the chief reached every ps and worker
  model ready      the chief built, restored or initialised the sharded model
  first update     the chief's first summary with an applied update
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from typing import Any

from gorila_tf import launch

# The checkout's root: this file is <root>/gorila_tf/lab/bench_startup.py.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STARTUP_LAUNCHES = 3
MILESTONES = (
    # (name, pattern, how many lines must match: 'all' of a role's tasks, or 1)
    ('tasks started', r'^\[launcher\] started chief', 1),
    ('ps serving', r'^\[ps\d+\].* serving at', 'ps'),
    ('bundles up', r'^\[worker\d+\].* learner at', 'worker'),
    ('chief connected', r'^\[chief\].* connected to \d+ ps and \d+ workers', 1),
    ('model ready', r'^\[chief\].* (initialised a new run|resumed from)', 1),
    ('first update', r'^\[chief\].* updates [1-9]\d* ', 1),
)


FIRST_UPDATE = MILESTONES[-1][1]


def milestone_seconds(timed_lines, needed: dict[str, int]) -> dict[str, float]:
  """{milestone: the second its line (the last of a role's tasks) came}.

  `timed_lines`: (second since the launch, line) pairs as they came;
  `needed`: how many tasks each role has ({'ps': 2, 'worker': 2}).
  """
  seen: dict[str, float] = {}
  matched: dict[str, int] = {}
  for second, line in timed_lines:
    for name, pattern, count in MILESTONES:
      if name in seen or not re.search(pattern, line):
        continue
      matched[name] = matched.get(name, 0) + 1
      if matched[name] >= (needed[count] if isinstance(count, str) else count):
        seen[name] = round(second, 2)
  return seen


def launch_once(config_name: str, overrides, config, timeout_s: float = 300
                ) -> dict[str, Any]:
  """One launch to its first update; each milestone's second, and the lines."""
  run_dir = tempfile.mkdtemp(prefix='gorila-startup-')
  command = launch.local_command(config_name, f'{run_dir}/run',
                                 ['run.summary_every_s=0.5', *overrides],
                                 '--progress=off')
  start = time.monotonic()
  proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  timed_lines = []
  timer = threading.Timer(timeout_s, proc.kill)
  timer.start()
  try:
    for line in proc.stdout:
      timed_lines.append((time.monotonic() - start, line))
      if re.search(FIRST_UPDATE, line):
        proc.send_signal(signal.SIGTERM)
        break
  finally:
    timer.cancel()
    for _ in proc.stdout:  # drain until the launcher has stopped
      pass
    proc.wait()
    shutil.rmtree(run_dir, ignore_errors=True)
  seconds = milestone_seconds(
      timed_lines, {'ps': config.launch.num_ps, 'worker': config.launch.num_workers})
  first = 'first update' in seconds
  return {'seconds': seconds,
          'console_lines_before_first_update': len(timed_lines) - 1 if first else None}


def measure(config_name: str, overrides, launches: int = STARTUP_LAUNCHES
            ) -> dict[str, Any]:
  """`launches` launches; each milestone's median second and every launch."""
  from gorila_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  config = config_lib.resolve(config_name, list(overrides))
  runs = [launch_once(config_name, overrides, config) for _ in range(launches)]
  medians = {}
  for name, _, _ in MILESTONES:
    values = [r['seconds'][name] for r in runs if name in r['seconds']]
    if len(values) == len(runs):
      medians[name] = round(statistics.median(values), 2)
  lines = [r['console_lines_before_first_update'] for r in runs]
  return {'launches': runs, 'median_s': medians,
          'median_console_lines': (statistics.median(lines)
                                   if None not in lines else None)}


def table(result: dict[str, Any]) -> str:
  lines = [f'[startup] {len(result["launches"])} launches to the first update '
           '(median seconds since the launch, and the step from the milestone '
           'before)', '', '| milestone | s | step |', '|---|---|---|']
  before = 0.0
  for name, second in result['median_s'].items():
    lines.append(f'| {name} | {second:.1f} | {second - before:+.1f} |')
    before = second
  lines.append(f'\nconsole lines before the first update (median): '
               f'{result["median_console_lines"]}')
  return '\n'.join(lines)
