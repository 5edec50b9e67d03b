"""Child processes that do not outlive their parent, and work done in one."""

from __future__ import annotations

import ctypes
import multiprocessing
import queue as queue_lib
import signal
import time
from typing import Any, Callable

PR_SET_PDEATHSIG = 1  # prctl option: a signal for the child when its parent dies


def die_with_parent() -> None:
  """A preexec_fn: the child is SIGKILLed when the process that started it
  dies, even by SIGKILL (Linux)."""
  ctypes.CDLL('libc.so.6', use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def in_child(target: Callable[..., None], *args: Any,
             timeout_s: float = 900.0) -> dict[str, Any]:
  """Runs target(*args, queue) in a fresh process and returns what it puts in
  the queue; {'error': ...} if it dies without an answer or takes longer than
  `timeout_s` (then it is killed). For work that changes TensorFlow's global
  context for good (connecting to a cluster)."""
  context = multiprocessing.get_context('spawn')
  queue = context.Queue()
  process = context.Process(target=target, args=(*args, queue))
  process.start()
  deadline = time.monotonic() + timeout_s
  try:
    while time.monotonic() < deadline:
      try:
        return queue.get(timeout=1.0)
      except queue_lib.Empty:
        if not process.is_alive():
          return {'error': f'the measuring process exited ({process.exitcode}) '
                           'without an answer'}
    return {'error': f'the measuring process gave no answer in {timeout_s:.0f} s'}
  finally:
    process.join(timeout=60)
    if process.is_alive():
      process.kill()
