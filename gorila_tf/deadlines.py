"""Blocking client calls the caller can stop waiting for.

Reverb's Python and TF clients have no deadline on a sample or an insert: a
call in progress when a host's link went down can wait on its TCP
connection long after the link is back (measured on emulated hosts: an
actor's parameter pull cut mid-call still hung 90 s after the link returned,
its bundle's actors stopped, and so did its learner, rate-limited on an
empty replay). Such calls run in a `BackgroundCall`: the caller waits as long
as it chooses, and a call that never returns costs one parked daemon thread.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable


class BackgroundCall:
  """`fn(*args)` in a daemon thread of its own, started at once."""

  def __init__(self, fn: Callable[..., Any], *args: Any, name: str = 'call'):
    self.result: Any = None
    self.error: BaseException | None = None
    self._started = time.monotonic()
    self._done = threading.Event()
    threading.Thread(target=self._run, args=(fn, args), name=name,
                     daemon=True).start()

  def _run(self, fn, args) -> None:
    try:
      self.result = fn(*args)
    except BaseException as e:  # pylint: disable=broad-except
      self.error = e  # the caller decides what it means
    finally:
      self._done.set()

  def wait(self, timeout_s: float) -> bool:
    """Whether the call has returned (or raised) within `timeout_s`."""
    return self._done.wait(timeout_s)

  def age_s(self) -> float:
    return time.monotonic() - self._started
