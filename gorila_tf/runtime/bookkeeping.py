"""The chief's books: what its loop counts between summaries and checkpoints.

Helpers the chief (chief.py) keeps beside the metrics they feed:

    in_flight = InFlight(overdue_s) # learner closures scheduled, results not
                                  #   in; a silent worker's are not waited for
    health = BundleHealth(...)    # which bundles answer (probed in threads)
                                  #   -> bundles/<i>/responsive, silent_s, ...
    window = SummaryWindow(...)   # learner results and actor stats since the
                                  #   last summary -> the TensorBoard scalars
    clock = Clock(wall_time)      # wall time over restarts; 'is X due again?'
    bundles = BundleWatch(n)      # bundle restarts seen in actor stats ->
                                  #   bundles/<i>/restarts, last_downtime_s
    flatten(config dict)          # -> the hparams TensorBoard shows
"""

from __future__ import annotations

import collections
import itertools
import queue
import threading
import time
from typing import Callable

from absl import logging

from gorila_tf.agent import replay
from gorila_tf.runtime import deadlines
from gorila_tf.runtime import metrics


def flatten(tree: dict, prefix: str = '') -> dict:
  """{'a': {'b': 1}} -> {'a.b': 1}."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(flatten(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


class BundleWatch:
  """Notices bundle restarts from the incarnation in their stats records."""

  def __init__(self, num_bundles: int):
    self._incarnation: dict[int, int] = {}
    self._last_seen: dict[int, float] = {}
    self.restarts = [0] * num_bundles
    self.last_downtime_s = [0.0] * num_bundles

  def saw(self, incarnations: dict[int, int]) -> None:
    now = time.monotonic()
    for bundle, incarnation in incarnations.items():
      known = self._incarnation.get(bundle)
      if known is not None and incarnation > known:
        downtime = now - self._last_seen[bundle]
        self.restarts[bundle] += 1
        self.last_downtime_s[bundle] = downtime
        logging.warning('bundle %d restarted: %.1f s without its reports', bundle,
                        downtime)
      self._incarnation[bundle] = max(incarnation, known or 0)
      self._last_seen[bundle] = now

  def summary(self) -> dict[str, float]:
    values = {}
    for i, (restarts, downtime) in enumerate(zip(self.restarts,
                                                 self.last_downtime_s)):
      values[f'bundles/{i}/restarts'] = restarts
      values[f'bundles/{i}/last_downtime_s'] = downtime
    return values


class InFlight:
  """Scheduled closures whose results are not in yet.

  Each closure's result is fetched in a daemon thread of its own (RemoteValue
  has no non-blocking test), so the chief waits for whichever finishes
  first, never for a particular worker. A closure running on a bundle that
  stopped answering (paused, partitioned) can take as long as the silence
  lasts: after `overdue_s` it no longer counts against the in-flight limit,
  so the chief keeps the answering workers busy, and its result is taken
  whenever it comes (its gradients are then stale and discarded on the ps).
  Each worker runs one closure at a time, so at most one closure per silent
  worker is overdue.
  """

  def __init__(self, overdue_s: float):
    self._overdue_s = overdue_s
    self._done: queue.Queue = queue.Queue()
    self._started: dict[int, float] = {}  # closure id -> monotonic start
    self._ids = itertools.count()

  def __len__(self) -> int:
    """Closures in flight, overdue ones included."""
    return len(self._started)

  def waiting(self) -> int:
    """Closures in flight that are not overdue."""
    now = time.monotonic()
    return sum(now - t < self._overdue_s for t in self._started.values())

  def overdue(self) -> int:
    return len(self) - self.waiting()

  def add(self, remote_value) -> None:
    closure_id = next(self._ids)
    self._started[closure_id] = time.monotonic()

    def fetch():
      try:
        self._done.put((closure_id, remote_value.fetch(), None))
      except Exception as e:  # pylint: disable=broad-except
        self._done.put((closure_id, None, e))  # raised in the chief's thread

    threading.Thread(target=fetch, name='fetch', daemon=True).start()

  def wait_any(self, timeout_s: float) -> list:
    """Results of the closures done within `timeout_s` (at least one, or none)."""
    try:
      first = self._done.get(timeout=timeout_s)
    except queue.Empty:
      return []
    results = [self._take(first)]
    while True:
      try:
        results.append(self._take(self._done.get_nowait()))
      except queue.Empty:
        return results

  def wait_all(self, timeout_s: float) -> list:
    """Results of every closure done within `timeout_s`; overdue ones are left."""
    deadline = time.monotonic() + timeout_s
    results = []
    while self._started:
      remaining = deadline - time.monotonic()
      if remaining <= 0:
        break
      results.extend(self.wait_any(remaining))
    return results

  def _take(self, item) -> dict:
    closure_id, result, error = item
    del self._started[closure_id]
    if error is not None:
      raise error
    return result


class BundleHealth:
  """Which bundles answer: probed off the chief's loop, reported in its summaries.

  A daemon thread asks every bundle's replay server for its size every
  `probe_every_s`, each with a deadline, so a paused or cut-off bundle
  costs the chief nothing. A bundle that has not answered for `timeout_s`
  is unresponsive: logged once, counted, and shown as `bundles/<i>/...`
  until it answers again, when it rejoins by itself (its closures and
  actors resume; nothing is restarted).
  """

  def __init__(self, addresses: list[str], timeout_s: float,
               probe_every_s: float = 1.0):
    self._addresses = list(addresses)
    self._timeout_s = timeout_s
    self._probe_every_s = probe_every_s
    n = len(addresses)
    now = time.monotonic()
    self._last_answer = [now] * n
    self._silent_from = [now] * n  # the last answer before a silence
    self.replay = [deadlines.ReplayStats(0, 0, 0)] * n  # as last answered
    self.responsive = [True] * n
    self.unresponsive_periods = [0] * n
    self.last_silence_s = [0.0] * n
    self.replay_checkpoints_skipped = [0] * n
    self._stop = threading.Event()
    self._pool = [threading.Thread(target=self._probe_loop, args=(i,),
                                   name=f'probe-{i}', daemon=True)
                  for i in range(n)]
    for thread in self._pool:
      thread.start()

  def _probe_loop(self, bundle: int) -> None:
    probe = deadlines.ReplayProbe(self._addresses[bundle], replay.REPLAY_TABLE,
                              timeout_s=max(1.0, self._probe_every_s))
    while not self._stop.wait(self._probe_every_s):
      stats = probe.stats()
      if stats is not None:
        self._last_answer[bundle] = time.monotonic()
        self.replay[bundle] = stats

  def silent_s(self, bundle: int) -> float:
    return time.monotonic() - self._last_answer[bundle]

  def check(self) -> list[int]:
    """Updates who is responsive, logging changes; returns the silent bundles."""
    for i in range(len(self._addresses)):
      silent = self.silent_s(i)
      if self.responsive[i] and silent > self._timeout_s:
        self.responsive[i] = False
        self._silent_from[i] = self._last_answer[i]
        self.unresponsive_periods[i] += 1
        logging.warning('bundle %d unresponsive: no answer for %.1f s; '
                        'training goes on with %d of %d bundles', i, silent,
                        sum(self.responsive), len(self.responsive))
      elif not self.responsive[i] and silent <= self._timeout_s:
        self.responsive[i] = True
        self.last_silence_s[i] = self._last_answer[i] - self._silent_from[i]
        logging.warning('bundle %d answers again after %.1f s of silence; it '
                        'rejoins', i, self.last_silence_s[i])
    return [i for i, ok in enumerate(self.responsive) if not ok]

  def summary(self) -> dict[str, float]:
    values = {'cluster/responsive_bundles': sum(self.responsive),
              'replay/size': sum(r.size for r in self.replay),
              # Counted by each server since it started (a restarted
              # bundle counts from 0 again): rates come from differences.
              'replay/inserted': sum(r.inserted for r in self.replay),
              'replay/sampled': sum(r.sampled for r in self.replay)}
    for i in range(len(self._addresses)):
      values[f'bundles/{i}/responsive'] = int(self.responsive[i])
      values[f'bundles/{i}/replay_size'] = self.replay[i].size
      values[f'bundles/{i}/silent_s'] = self.silent_s(i)
      values[f'bundles/{i}/unresponsive_periods'] = self.unresponsive_periods[i]
      values[f'bundles/{i}/last_silence_s'] = self.last_silence_s[i]
      values[f'bundles/{i}/replay_checkpoints_skipped'] = (
          self.replay_checkpoints_skipped[i])
    return values

  def close(self) -> None:
    self._stop.set()


class Clock:
  """Wall time summed over restarts, and 'is it time for X again?'."""

  def __init__(self, wall_time_before_s: float,
               now: Callable[[], float] = time.monotonic):
    self._now = now
    self._start = now()
    self._before = wall_time_before_s
    self._last: dict[str, float] = {}

  def wall_time_s(self) -> float:
    return self._before + self._now() - self._start

  def due(self, what: str, every_s: float) -> bool:
    now = self._now()
    if now - self._last.setdefault(what, self._start) >= every_s:
      self._last[what] = now
      return True
    return False


class SummaryWindow:
  """What happened since the last summary."""

  def __init__(self, frames: int, updates: int):
    self.frame_meter = metrics.RateMeter(frames)
    self.update_meter = metrics.RateMeter(updates)
    self.overdue = 0  # closures in flight on silent bundles, now
    self.reset()

  def reset(self) -> None:
    self.actors = metrics.ActorStats()
    self.learner: dict[str, list[float]] = collections.defaultdict(list)
    self.samples: dict[str, list[float]] = collections.defaultdict(list)

  def add_learner(self, result: dict) -> None:
    for key, value in result.items():
      if getattr(value, 'ndim', 0):
        self.samples[key].extend(float(v) for v in value)
      else:
        self.learner[key].append(float(value))

  def mean(self, key: str) -> float:
    values = self.learner[key]
    return metrics.mean_or_nan(sum(values), len(values))
