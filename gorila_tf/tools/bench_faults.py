r"""Time to recover from each fault, and the work each one loses.

Starts a local cluster, lets it train, then SIGKILLs a worker, a ps and the
chief in turn (waiting for recovery in between) and reads the launcher's
output to time each recovery:

  worker  kill -> the chief hears from the restarted bundle again
          (`bundle <i> restarted`); the ps state loses nothing, the bundle's
          replay falls back to its last replay checkpoint;
  ps      kill -> the restarted chief's first summary with more updates than
          the checkpoint it resumed from; lost: the updates since that
          checkpoint;
  chief   the same.

  python -m gorila_tf.tools.bench --sections=faults
"""

from __future__ import annotations

import dataclasses
import os
import queue
import re
import signal
import subprocess
import tempfile
import threading
import time
from typing import Any, Optional

from gorila_tf import config as config_lib
from gorila_tf import launch

STARTED = re.compile(r'\[launcher\] started (\w+) \(pid (\d+)\)')
SUMMARY = re.compile(r'\[chief\] .* frames (\d+) updates (\d+) ')
RESUMED = re.compile(r'\[chief\] .* resumed from \S+ at (\d+) updates')
BUNDLE_BACK = re.compile(r'\[chief\] .* bundle (\d+) restarted: ([\d.]+) s')


@dataclasses.dataclass
class LogState:
  """What the launcher's output has told so far."""

  pids: dict = dataclasses.field(default_factory=dict)  # role -> newest pid
  updates: int = 0  # in the chief's newest summary
  resumed_at: Optional[int] = None  # updates of the newest resume
  bundle_back: dict = dataclasses.field(default_factory=dict)  # bundle -> downtime

  def read(self, line: str) -> None:
    if m := STARTED.search(line):
      self.pids[m.group(1)] = int(m.group(2))
    elif m := RESUMED.search(line):
      self.resumed_at = self.updates = int(m.group(1))
    elif m := BUNDLE_BACK.search(line):
      self.bundle_back[int(m.group(1))] = float(m.group(2))
    elif m := SUMMARY.search(line):
      self.updates = int(m.group(2))


class _Launcher:
  """A local cluster whose output is parsed as it comes."""

  def __init__(self, config_name: str, overrides, run_dir: str):
    self.state = LogState()
    self._lines: queue.Queue = queue.Queue()
    self.proc = subprocess.Popen(
        launch.local_command(config_name, run_dir, overrides,
                             '--progress=off', '--max_restarts=3'),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    threading.Thread(target=self._pump, daemon=True).start()

  def _pump(self) -> None:
    for line in self.proc.stdout:
      self._lines.put(line)

  def wait_for(self, done, timeout_s: float) -> Optional[float]:
    """Reads output until done(state) is true; the time then, or None."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
      if done(self.state):
        return time.monotonic()
      try:
        self.state.read(self._lines.get(timeout=0.5))
      except queue.Empty:
        if self.proc.poll() is not None:
          return None
    return None

  def stop(self) -> None:
    self.proc.send_signal(signal.SIGTERM)
    try:
      self.proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
      self.proc.kill()


def _kill(launcher: _Launcher, role: str) -> tuple[float, int]:
  updates = launcher.state.updates
  os.kill(launcher.state.pids[role], signal.SIGKILL)
  return time.monotonic(), updates


# Checkpoints often enough to bound the loss, summaries often enough to time it;
# the caller's overrides come after these and win.
DEFAULT_OVERRIDES = ('run.checkpoint_every_s=30', 'run.summary_every_s=2')


def measure(config_name: str, overrides=(), warmup_s: float = 90.0,
            timeout_s: float = 300.0) -> dict[str, Any]:
  overrides = [*DEFAULT_OVERRIDES, *overrides]
  run_dir = tempfile.mkdtemp(prefix='gorila-faults-')
  launcher = _Launcher(config_name, overrides, run_dir)
  results: dict[str, Any] = {}
  try:
    start = launcher.wait_for(lambda s: s.updates > 0, timeout_s)
    if start is None:
      return {'error': 'the cluster did not start training'}
    launcher.wait_for(lambda s: False, warmup_s)  # past the first checkpoint

    killed, _ = _kill(launcher, 'worker1')
    back = launcher.wait_for(lambda s: 1 in s.bundle_back, timeout_s)
    results['worker'] = {'recovery_s': back and back - killed,
                         'bundle_downtime_s': launcher.state.bundle_back.get(1),
                         'updates_lost': 0}
    launcher.wait_for(lambda s: False, 40.0)  # a checkpoint between faults

    for role, key in (('ps0', 'ps'), ('chief', 'chief')):
      launcher.state.resumed_at = None
      killed, updates_before = _kill(launcher, role)
      back = launcher.wait_for(
          lambda s: s.resumed_at is not None and s.updates > s.resumed_at,
          timeout_s)
      resumed = launcher.state.resumed_at
      results[key] = {'recovery_s': back and back - killed,
                      'updates_lost': (None if resumed is None
                                       else max(0, updates_before - resumed)),
                      'updates_at_kill': updates_before,
                      'resumed_at_updates': resumed}
      launcher.wait_for(lambda s: False, 40.0)
  finally:
    launcher.stop()
  results['checkpoint_every_s'] = config_lib.resolve(
      config_name, overrides).run.checkpoint_every_s
  return results
