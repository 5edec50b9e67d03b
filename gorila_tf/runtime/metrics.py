"""What the run reports: actor stats to the chief, and the chief's summaries.

Actors send small aggregated records (steps, finished episodes, returns, the
parameter version they act with) into a FIFO table on the chief's Reverb
server. The chief drains it, adds learner figures and writes TensorBoard
scalars plus one JSON line per summary to `progress.jsonl` in the run dir.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import threading
import time
from typing import Any

import numpy as np
import reverb
import tensorflow as tf
from absl import logging

from gorila_tf import errors
from gorila_tf.runtime import deadlines

STATS_TABLE = 'actor_stats'
STATS_SIGNATURE = {
    'bundle': tf.TensorSpec((), tf.int32),
    'env_steps': tf.TensorSpec((), tf.int64),  # agent steps since last record
    'episodes': tf.TensorSpec((), tf.int64),  # episodes finished since then
    'return_sum': tf.TensorSpec((), tf.float64),  # their summed returns
    'length_sum': tf.TensorSpec((), tf.int64),  # their summed lengths, steps
    'param_version': tf.TensorSpec((), tf.int64),  # version acted with, -1 = none
    'incarnation': tf.TensorSpec((), tf.int64),  # the bundle process's start, ms
}


def make_stats_table(max_size: int = 100_000) -> reverb.Table:
  """A queue that drops its oldest records rather than block actors."""
  return reverb.Table(
      name=STATS_TABLE,
      sampler=reverb.selectors.Fifo(),
      remover=reverb.selectors.Fifo(),
      max_size=max_size,
      max_times_sampled=1,
      rate_limiter=reverb.rate_limiters.MinSize(1),
      signature=STATS_SIGNATURE)


@dataclasses.dataclass
class ActorStats:
  """A sum of stats records."""

  env_steps: int = 0
  episodes: int = 0
  return_sum: float = 0.0
  length_sum: int = 0
  param_versions: list = dataclasses.field(default_factory=list)
  steps_by_bundle: dict = dataclasses.field(default_factory=dict)
  incarnations: dict = dataclasses.field(default_factory=dict)  # bundle -> newest

  def add(self, record: dict) -> None:
    bundle = int(record['bundle'])
    self.incarnations[bundle] = max(self.incarnations.get(bundle, 0),
                                    int(record['incarnation']))
    self.steps_by_bundle[bundle] = (self.steps_by_bundle.get(bundle, 0)
                                    + int(record['env_steps']))
    self.env_steps += int(record['env_steps'])
    self.episodes += int(record['episodes'])
    self.return_sum += float(record['return_sum'])
    self.length_sum += int(record['length_sum'])
    if int(record['param_version']) >= 0:
      self.param_versions.append(int(record['param_version']))

  def merge(self, other: 'ActorStats') -> None:
    self.env_steps += other.env_steps
    self.episodes += other.episodes
    self.return_sum += other.return_sum
    self.length_sum += other.length_sum
    self.param_versions.extend(other.param_versions)
    for bundle, steps in other.steps_by_bundle.items():
      self.steps_by_bundle[bundle] = self.steps_by_bundle.get(bundle, 0) + steps
    for bundle, incarnation in other.incarnations.items():
      self.incarnations[bundle] = max(self.incarnations.get(bundle, 0), incarnation)


def deliver_stats(address: str, record: dict) -> None:
  """Inserts one stats record at the chief; blocking (run as a background call)."""
  client = reverb.Client(address)
  client.server_info(timeout=1)  # inserting into a dead server blocks
  client.insert(record, priorities={STATS_TABLE: 1.0})


SEND_DEADLINE_S = 10.0  # a stats send unanswered this long is left behind


class StatsReporter:
  """Actor side: aggregates steps and episodes; a thread sends them.

  The actor only adds to counters; a background thread sends the sums every
  interval. Sums that cannot be sent (chief down or restarting) are kept and
  sent later, so the chief's frame count loses nothing and the actor never
  waits on the chief. A send unanswered for `deadline_s` (its connection went
  silent mid-call: deadlines.py) is left behind and logged; its sums may
  arrive late or go uncounted, never twice.
  """

  def __init__(self, address: str, bundle: int, interval_s: float,
               deadline_s: float = SEND_DEADLINE_S):
    self._address = address
    self._bundle = bundle
    self._interval_s = interval_s
    self._deadline_s = deadline_s
    self._lock = threading.Lock()
    self._pending = ActorStats()
    self._param_version = -1
    self._incarnation = int(time.time() * 1000)  # tells the chief of restarts
    self._delivered = False  # a send has been answered since this started
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._loop, daemon=True,
                                    name=f'stats-{bundle}')
    self._thread.start()

  def record_steps(self, env_steps: int, param_version: int) -> None:
    with self._lock:
      self._pending.env_steps += env_steps
      self._param_version = param_version

  def record_episode(self, episode_return: float, length: int) -> None:
    with self._lock:
      self._pending.episodes += 1
      self._pending.return_sum += episode_return
      self._pending.length_sum += length

  def pending(self) -> ActorStats:
    """A copy of the sums recorded but not yet delivered to the chief."""
    with self._lock:
      copy = ActorStats()
      copy.merge(self._pending)
      return copy

  def _loop(self) -> None:
    while not self._stop.wait(self._interval_s):
      self.send()

  def send(self) -> bool:
    """Sends the pending sums now; returns whether they arrived."""
    with self._lock:
      sent, self._pending = self._pending, ActorStats()
      version = self._param_version
    record = {'bundle': np.int32(self._bundle),
              'env_steps': np.int64(sent.env_steps),
              'episodes': np.int64(sent.episodes),
              'return_sum': np.float64(sent.return_sum),
              'length_sum': np.int64(sent.length_sum),
              'param_version': np.int64(version),
              'incarnation': np.int64(self._incarnation)}
    delivery = deadlines.BackgroundCall(deliver_stats, self._address, record,
                                        name='stats-send')
    if not delivery.wait(self._deadline_s):
      # Under way on a connection gone silent: the sums may still arrive, so
      # they are not sent again (a frame counted twice would end the run
      # early); if they never arrive, the chief undercounts these steps.
      logging.warning('stats to %s unanswered for %.0f s: left behind, %d '
                      'steps may go uncounted', self._address, self._deadline_s,
                      sent.env_steps)
      return False
    if delivery.expected_error() is not None:
      with self._lock:
        self._pending.merge(sent)  # not delivered: kept for the next try
      if self._stop.is_set():
        # The last send, at a run's stop: the chief stopped first (it
        # checkpoints the bundles' replay), so this is expected.
        logging.info('stats to %s failed at the stop (the chief stopped '
                     'first): %s; %d steps not counted', self._address,
                     delivery.error, sent.env_steps)
        return False
      # Before any send was answered the chief is still starting: expected.
      logging.log_every_n_seconds(
          logging.WARNING if self._delivered else logging.INFO,
          'stats to %s failed: %s' + ('' if self._delivered else
                                      ' (the chief is still starting)'),
          30, self._address, delivery.error)
      return False
    self._delivered = True
    return True

  def close(self) -> None:
    """Stops the thread after a last send."""
    self._stop.set()
    self._thread.join(timeout=10)
    self.send()


def drain_stats(client: reverb.Client) -> ActorStats:
  """Chief side: takes every record currently queued."""
  total = ActorStats()
  size = client.server_info()[STATS_TABLE].current_size
  if size == 0:
    return total
  for sample in client.sample(STATS_TABLE, num_samples=size,
                              emit_timesteps=False,
                              unpack_as_table_signature=True):
    total.add({k: np.asarray(v).item() for k, v in sample.data.items()})
  return total


class RateMeter:
  """Rate of a monotonically growing counter between calls."""

  def __init__(self, value: float = 0.0):
    self._value = value
    self._time = time.monotonic()

  def rate(self, value: float) -> float:
    now = time.monotonic()
    elapsed = max(now - self._time, 1e-9)
    rate = (value - self._value) / elapsed
    self._value, self._time = value, now
    return rate


@contextlib.contextmanager
def disk_full_is_said(path: str):
  """A full disk met inside (an OSError, or TensorFlow's summary writer's
  ResourceExhaustedError) becomes errors.DiskFull naming `path`."""
  try:
    yield
  except (OSError, tf.errors.OpError) as e:
    if errors.is_no_space(e):
      raise errors.DiskFull(f'no space left writing in {path} '
                            '(No space left on device)') from None
    raise


class SummaryWriter:
  """TensorBoard scalars plus a JSON-lines copy for scripts and tests.

  Opening it and every write raise errors.DiskFull when the disk is full.
  """

  def __init__(self, run_dir: str, subdir: str = 'tb',
               progress_file: str = 'progress.jsonl'):
    with disk_full_is_said(run_dir):  # its first event is written at once
      self._writer = tf.summary.create_file_writer(os.path.join(run_dir, subdir))
    self._progress_path = os.path.join(run_dir, progress_file)
    self._lock = threading.Lock()
    self._run_dir = run_dir

  def scalars(self, step: int, values: dict[str, float], **extra) -> None:
    """Writes `values` (tag -> number) at `step`; NaNs are left out."""
    clean = {k: float(v) for k, v in values.items()
             if v is not None and np.isfinite(v)}
    with self._lock, disk_full_is_said(self._run_dir):
      with self._writer.as_default(step=step):
        for tag, value in clean.items():
          tf.summary.scalar(tag, value)
      self._writer.flush()
      line = json.dumps({'step': step, 'time': time.time(), **extra, **clean})
      with open(self._progress_path, 'a') as f:
        f.write(line + '\n')

  def text(self, tag: str, text: str, step: int = 0) -> None:
    with (self._lock, disk_full_is_said(self._run_dir),
          self._writer.as_default(step=step)):
      tf.summary.text(tag, text)
      self._writer.flush()

  def histograms(self, step: int, values: dict[str, list[float]]) -> None:
    with (self._lock, disk_full_is_said(self._run_dir),
          self._writer.as_default(step=step)):
      for tag, data in values.items():
        if len(data):
          tf.summary.histogram(tag, np.asarray(data, np.float64))
      self._writer.flush()

  def hparams(self, flat: dict[str, Any]) -> None:
    """The run's config in TensorBoard's HPARAMS tab."""
    from tensorboard.plugins.hparams import api as hp  # pylint: disable=g-import-not-at-top
    clean = {k: v if isinstance(v, (bool, int, float, str)) else str(v)
             for k, v in flat.items()}
    with (self._lock, disk_full_is_said(self._run_dir),
          self._writer.as_default(step=0)):
      hp.hparams(clean)
      self._writer.flush()

  def animation(self, tag: str, gif: bytes, width: int, height: int,
                step: int) -> None:
    """An animated GIF in the IMAGES tab (the image plugin shows the bytes)."""
    from tensorboard.plugins.image import metadata as image_metadata  # pylint: disable=g-import-not-at-top
    metadata = image_metadata.create_summary_metadata(
        display_name=tag, description='an evaluation episode')
    with (self._lock, disk_full_is_said(self._run_dir),
          self._writer.as_default(step=step)):
      tf.summary.write(tag, tf.constant([str(width), str(height), gif]),
                       metadata=metadata)
      self._writer.flush()

  def close(self) -> None:
    try:
      self._writer.close()
    except (OSError, tf.errors.OpError) as e:  # a full disk: said already
      logging.warning('summaries of %s not flushed: %s', self._run_dir, e)


def mean_or_nan(total: float, count: int) -> float:
  return total / count if count else float('nan')


def percentiles(tag: str, samples, qs=(50, 90, 99)) -> dict[str, float]:
  """{'<tag>_p50': ..., '<tag>_p90': ..., '<tag>_p99': ...}; {} without samples."""
  if not len(samples):
    return {}
  values = np.percentile(np.asarray(samples, dtype=np.float64), qs)
  return {f'{tag}_p{q}': float(v) for q, v in zip(qs, values)}
