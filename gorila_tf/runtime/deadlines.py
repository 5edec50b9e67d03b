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
from typing import Any, Callable, NamedTuple, Optional

import reverb
import tensorflow as tf

# How a Reverb client call to a server that is down, restarting or cut off
# fails (besides not returning at all).
CLIENT_ERRORS = (reverb.errors.ReverbError, tf.errors.OpError, RuntimeError,
                 ValueError, KeyError)


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

  def expected_error(self, expected: tuple = CLIENT_ERRORS
                     ) -> Optional[BaseException]:
    """The call's error if it is one of `expected` (else raised here); None
    if it returned."""
    if self.error is not None and not isinstance(self.error, expected):
      raise self.error
    return self.error


class TableProbe:
  """One table's info from a Reverb server, asked with a deadline.

  `info()` is None when the server does not answer within `timeout_s` (down,
  restarting, paused, cut off) and never blocks longer; the next call after a
  failure connects afresh (a restarted server).
  """

  def __init__(self, address: str, table: str, timeout_s: float):
    self._address = address
    self._table = table
    self._timeout_s = timeout_s
    self._client = None

  def info(self):
    try:
      if self._client is None:
        self._client = reverb.Client(self._address)
      return self._client.server_info(
          timeout=max(1, round(self._timeout_s)))[self._table]
    except CLIENT_ERRORS:
      self._client = None
      return None


class ReplayStats(NamedTuple):
  """What one bundle's replay server says about its table."""

  size: int  # transitions held
  inserted: int  # transitions inserted since the server started
  sampled: int  # transitions sampled since the server started


class ReplayProbe:
  """Asks one bundle's replay server for its table's stats, with a deadline.

  The chief's way to tell whether a bundle answers: `stats()` returns None
  when the server does not answer within `timeout_s` (paused, cut off,
  restarting), and never blocks longer.
  """

  def __init__(self, address: str, table: str, timeout_s: float):
    self._table = TableProbe(address, table, timeout_s)

  def stats(self) -> ReplayStats | None:
    table = self._table.info()
    if table is None:
      return None
    limiter = table.rate_limiter_info
    return ReplayStats(size=table.current_size,
                       inserted=limiter.insert_stats.completed,
                       sampled=limiter.sample_stats.completed)
