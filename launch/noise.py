"""Known noise in the tasks' output: kept in their logs, counted on the console.

The launcher writes every line a task prints to <run_dir>/logs/<task>.log and
shows it on the console too, except the known noise below: lines that come
by the hundred or look alarming without being so. Each has a name and the
reason it is noise. A task's noise is counted, and every `SUMMARY_EVERY_S`
(and when the task is closed) one line says what was left out and where:

    [launcher] worker0: 1,234 Reverb writer warnings kept in runs/x/logs/worker0.log

Only exact, known patterns are filtered: anything new reaches the console.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from typing import Callable, Optional, Sequence

SUMMARY_EVERY_S = 300.0


@dataclasses.dataclass(frozen=True)
class Noise:
  """One kind of line the console leaves out."""

  name: str  # plural, as the summary line says it
  pattern: re.Pattern
  why: str  # why it is noise


KNOWN_NOISE = (
    Noise('Reverb writer warnings',
          re.compile(r'The number of pending items is alarmingly high'),
          'a writer whose inserts the rate limiter holds back has many items '
          'pending; replay.TransitionWriter keeps below the 50 where Reverb '
          'warns, so these should not come any more'),
    Noise('Reverb same-process notes',
          re.compile(r'Sampler and server are owned by the same process'),
          'Reverb logs it for every new sampler of a table in the same '
          'process: each drain of the actors\' stats in the chief'),
    Noise('TensorFlow CUDA-plugin errors',
          re.compile(r'Unable to register cu(DNN|FFT|BLAS) factory'),
          'TensorFlow 2.15 registers its CUDA plugins twice on import; '
          'harmless, with or without a GPU'),
    Noise('Reverb start-up notes',
          re.compile(r'Initializing TFRecordCheckpointer|Loading latest '
                     r'checkpoint from|Started replay server on port'),
          'each Reverb server says where it checkpoints and on which port it '
          'listens; the bundle\'s own start-up line names its replay port'),
    Noise('Reverb replay-loading notes',
          re.compile(r'tfrecord_checkpointer\.cc:\d+\] (Still reading '
                     r'compressed trajectory data|Loading checkpoint from|'
                     r'Loading and verifying metadata|Metadata for table|'
                     r'Successfully loaded and verified metadata|Completed '
                     r'reading compressed trajectory data|Successfully loaded '
                     r'\d+ tables)'),
          'a resumed bundle\'s Reverb server reads its replay checkpoint and '
          'says so every 100 records (~450 lines for Pong\'s 50k); its line '
          '"Table replay and N items have been successfully loaded" is shown'),
    Noise('task start lines',
          re.compile(r'train\.py:\d+\] task \w+:\d+, config '),
          'every task names its role and preset once its imports are done; '
          'the launcher\'s "started" lines and config.json say the same'),
    Noise('chief start-up waits',
          re.compile(r'\(the chief is still starting\)'),
          'actors pull parameters and send stats from their first steps; '
          'until the chief has built its model nothing answers, and they '
          'retry (a failure after the first answer is still shown)'),
    Noise('TensorRT notices',
          re.compile(r'TF-TRT Warning: Could not find TensorRT'),
          'TensorFlow looks for TensorRT on import; nothing here uses it'),
)


class ConsoleFilter:
  """Decides for one task's lines: console, or log only (and counted)."""

  def __init__(self, role: str, log_path: str,
               noise: Sequence[Noise] = KNOWN_NOISE,
               every_s: float = SUMMARY_EVERY_S,
               clock: Callable[[], float] = time.monotonic):
    self._role = role
    self._log_path = log_path
    self._noise = tuple(noise)
    self._every_s = every_s
    self._clock = clock
    self._lock = threading.Lock()  # a restarted task's old pump may still run
    self._counts = {n.name: 0 for n in self._noise}
    self._last_summary = clock()
    self.left_out = 0  # lines left off the console so far

  def shows(self, line: str) -> bool:
    """True if `line` goes to the console; False (and counted) if noise."""
    for n in self._noise:
      if n.pattern.search(line):
        with self._lock:
          self._counts[n.name] += 1
          self.left_out += 1
        return False
    return True

  def summary(self, force: bool = False) -> Optional[str]:
    """The line saying what was left out since the last one, when it is due
    (or `force`); None when nothing was left out or it is not due."""
    with self._lock:
      if not force and self._clock() - self._last_summary < self._every_s:
        return None
      self._last_summary = self._clock()
      counts = [(name, k) for name, k in self._counts.items() if k]
      self._counts = dict.fromkeys(self._counts, 0)
    if not counts:
      return None
    what = ', '.join(f'{k:,} {name}' for name, k in counts)
    return f'[launcher] {self._role}: {what} kept in {self._log_path}'
