"""The chief's books: what its loop counts between summaries and checkpoints.

Helpers the chief (chief.py) keeps beside the metrics they feed:

    in_flight = InFlight(n)       # learner closures scheduled, results not in
    window = SummaryWindow(...)   # learner results and actor stats since the
                                  #   last summary -> the TensorBoard scalars
    clock = Clock(wall_time)      # wall time over restarts; 'is X due again?'
    bundles = BundleWatch(n)      # bundle restarts seen in actor stats ->
                                  #   bundles/<i>/restarts, last_downtime_s
    flatten(config dict)          # -> the hparams TensorBoard shows
"""

from __future__ import annotations

import collections
from concurrent import futures
import time

from absl import logging

from gorila_tf import metrics


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

  Waits for whichever finishes first, so that one slow worker does not hold
  back the scheduling of closures for the others (RemoteValue has no
  non-blocking test, so each fetch waits in a thread of its own).
  """

  def __init__(self, max_in_flight: int):
    self._pool = futures.ThreadPoolExecutor(max_in_flight,
                                            thread_name_prefix='fetch')
    self._pending: set[futures.Future] = set()

  def __len__(self) -> int:
    return len(self._pending)

  def add(self, remote_value) -> None:
    self._pending.add(self._pool.submit(remote_value.fetch))

  def wait_any(self) -> list:
    done, self._pending = futures.wait(self._pending,
                                       return_when=futures.FIRST_COMPLETED)
    return [f.result() for f in done]

  def wait_all(self) -> list:
    done, self._pending = futures.wait(self._pending), set()
    return [f.result() for f in done.done]


class Clock:
  """Wall time summed over restarts, and 'is it time for X again?'."""

  def __init__(self, wall_time_before_s: float):
    self._start = time.monotonic()
    self._before = wall_time_before_s
    self._last: dict[str, float] = {}

  def wall_time_s(self) -> float:
    return self._before + time.monotonic() - self._start

  def due(self, what: str, every_s: float) -> bool:
    now = time.monotonic()
    if now - self._last.setdefault(what, self._start) >= every_s:
      self._last[what] = now
      return True
    return False


class SummaryWindow:
  """What happened since the last summary."""

  def __init__(self, frames: int, updates: int):
    self.frame_meter = metrics.RateMeter(frames)
    self.update_meter = metrics.RateMeter(updates)
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
