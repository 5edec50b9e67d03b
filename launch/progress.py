"""The launcher's progress line: frames, updates, speeds, returns, ETA.

The chief appends a JSON record to <run_dir>/progress.jsonl at every summary
and the evaluator one to eval.jsonl; this module tails both files (it never
talks to the cluster) and renders one line. On a terminal the line stays at
the bottom and is redrawn in place under the tasks' log lines; when stdout is
a pipe or a file it is printed as a plain `[progress] ...` line now and then.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from typing import Optional, TextIO

MODES = ('auto', 'live', 'lines', 'off')


def _number(value: float) -> str:
  return f'{value:,.0f}'


def _duration(seconds: float) -> str:
  seconds = int(round(seconds))
  return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


def _finite(value) -> Optional[float]:
  return None if value is None or not math.isfinite(value) else float(value)


def _frames_short(frames: float) -> str:
  return f'{frames / 1e6:.2f}M' if frames >= 1e6 else f'{frames / 1e3:.0f}k'


def _eval_text(eval_record: Optional[dict]) -> str:
  """The newest evaluation and the frames of its checkpoint: a score stays
  on the line until the next one, so it says how old it is."""
  score = _finite((eval_record or {}).get('eval/episodic_return'))
  if score is None:
    return '-'
  frames = eval_record.get('step')
  return f'{score:.1f}' + (f' @{_frames_short(frames)}' if frames else '')


def format_line(record: dict, eval_record: Optional[dict], max_frames: int,
                elapsed_s: float, average_fps: Optional[float] = None) -> str:
  """One line from the latest progress and evaluation records.

  The ETA is the frames still to go at `average_fps` (frames/s since this
  launch's first record, steadier than the latest window's), or at the
  latest frames/s when there is no average yet.
  """
  frames = record.get('charts/frames', record.get('step', 0))
  fps = _finite(record.get('charts/frames_per_second')) or 0.0
  parts = [f'frames {_number(frames)}/{_number(max_frames)} '
           f'({100.0 * frames / max_frames:.0f}%)',
           f'updates {_number(record.get("learners/updates", 0))}',
           f'{fps:.0f} fps',
           f'{_finite(record.get("learners/updates_per_second")) or 0.0:.1f} ups']
  episode_return = _finite(record.get('charts/episodic_return'))
  parts.append('return ' + ('-' if episode_return is None
                            else f'{episode_return:.1f}'))
  parts.append('eval ' + _eval_text(eval_record))
  parts.append(f'elapsed {_duration(elapsed_s)}')
  left = max(0, max_frames - frames)
  rate = average_fps if average_fps else fps
  parts.append('ETA ' + (_duration(left / rate) if rate > 0 else '-'))
  return ' | '.join(parts)


def _size(path: str) -> int:
  try:
    return os.path.getsize(path)
  except FileNotFoundError:
    return 0


class JsonlTail:
  """The last record of a growing JSON-lines file, read incrementally."""

  def __init__(self, path: str):
    self.path = path
    self.offset = 0  # bytes read so far
    self._partial = ''
    self.last: Optional[dict] = None

  def poll(self) -> bool:
    """Reads what was appended; True when there is a new record."""
    try:
      with open(self.path) as f:
        f.seek(self.offset)
        chunk = f.read()
        self.offset = f.tell()
    except FileNotFoundError:
      return False
    lines = (self._partial + chunk).split('\n')
    self._partial = lines.pop()  # an unfinished last line waits for the rest
    new = False
    for line in lines:
      if line.strip():
        try:
          self.last, new = json.loads(line), True
        except json.JSONDecodeError:
          pass
    return new


class Console:
  """Serializes the tasks' log lines and the progress line on one stream."""

  def __init__(self, stream: TextIO = None, live: bool = False):
    self._stream = stream or sys.stdout
    self.live = live
    self._lock = threading.Lock()
    self._status = ''

  def log(self, text: str) -> None:
    with self._lock:
      if self.live and self._status:
        self._stream.write('\r\x1b[K')  # lift the status line off the bottom
      self._stream.write(text + '\n')
      if self.live and self._status:
        self._stream.write(self._status)
      self._stream.flush()

  def status(self, text: str) -> None:
    """Redraws the live line, or prints a plain progress line."""
    if not self.live:
      self.log(f'[progress] {text}')
      return
    with self._lock:
      self._status = text
      self._stream.write('\r\x1b[K' + text)
      self._stream.flush()

  def close(self) -> None:
    with self._lock:
      if self.live and self._status:
        self._stream.write('\n')
        self._stream.flush()
      self._status = ''


def make_console(mode: str, stream: TextIO = None) -> Console:
  stream = stream or sys.stdout
  if mode not in MODES:
    raise ValueError(f'--progress={mode!r} is not one of {", ".join(MODES)}')
  live = mode == 'live' or (mode == 'auto' and stream.isatty())
  return Console(stream, live)


class ProgressReporter(threading.Thread):
  """Shows the progress line every `every_s` seconds while the run goes on.

  A plain line is printed only when the chief wrote a new record since the
  last one, so a quiet log stays quiet; the live line ticks on regardless.
  """

  def __init__(self, console: Console, run_dir: str, max_frames: int,
               every_s: float, stop: threading.Event):
    super().__init__(daemon=True)
    self._console = console
    self._progress = JsonlTail(os.path.join(run_dir, 'progress.jsonl'))
    # A resumed run's file already holds the earlier launches' records; the
    # average starts at the first record written after them, or the hours
    # the run stood stopped would count as hours of training.
    self._earlier_bytes = _size(self._progress.path)
    self._evals = JsonlTail(os.path.join(run_dir, 'eval.jsonl'))
    self._max_frames = max_frames
    self._every_s = every_s
    self._done = stop
    self._start = time.monotonic()
    self._first: Optional[tuple[float, float]] = None  # (time, frames) seen first

  def run(self) -> None:
    while not self._done.wait(self._every_s):
      self.report_once()

  def report_once(self) -> None:
    new = self._progress.poll()
    new = self._evals.poll() or new
    record = self._progress.last
    if record is not None and (new or self._console.live):
      now = (record.get('time', 0.0), record.get('charts/frames', 0.0))
      if self._progress.offset > self._earlier_bytes:
        self._first = self._first or now
      first = self._first or now
      span = now[0] - first[0]
      average = (now[1] - first[1]) / span if span > 0 else None
      self._console.status(format_line(
          record, self._evals.last, self._max_frames,
          time.monotonic() - self._start, average))
