"""Checkpoints that survive crashes, refuse mismatches and skip corruption.

* Model checkpoints: `tf.train.CheckpointManager` writes the new files first
  and names them in the `checkpoint` index file last (an atomic rename), so a
  crash during a save leaves the previous checkpoint as the latest. The last
  `run.keep_checkpoints` are kept.
* Reading: the newest checkpoint that restores cleanly is used; a corrupt or
  truncated newer one is reported and skipped.
* Compatibility: `model_signature.json` in the run directory records what a
  checkpoint's shapes depend on (game, actions, network, n-step, shard count);
  a run with a different one is refused with the differences named
  (run_dir.py: the launcher checks it too, without TensorFlow).
* Replay: each bundle's Reverb server checkpoints its table under
  `<run_dir>/replay/bundle_<i>/` when the chief checkpoints, and loads the
  newest one when it starts. One that cannot be read (a garbled or
  truncated file) would make Reverb's server fail at every start, so it is
  read through first; an unreadable one is moved aside, untouched, and the
  bundle starts with an empty replay, saying so.
"""

from __future__ import annotations

import json
import os
import threading
import time
import zlib
from typing import Optional

import numpy as np
import reverb
import tensorflow as tf
from absl import logging

from gorila_tf import config as config_lib
from gorila_tf import errors
from gorila_tf.runtime import run_dir as run_dir_lib

REPLAY_DIR = 'replay'

# What TF's checkpoint reader raises on a damaged checkpoint: a garbled
# index or checksum (OpError), a data file cut short (IndexError: "Read less
# bytes than requested"; found by a 30-minute chaos run, where the start-up
# check let it through and the chief failed at every start), and the rest.
UNREADABLE = (tf.errors.OpError, ValueError, AssertionError, IndexError,
              OSError, RuntimeError)


def restore_newest_readable(manager: tf.train.CheckpointManager,
                            checkpoint: tf.train.Checkpoint) -> Optional[str]:
  """Restores the newest checkpoint that reads cleanly; None if there is none.

  Raises:
    ConfigError: if checkpoints exist but none of them can be read.
  """
  candidates = list(reversed(manager.checkpoints))
  for path in candidates:
    try:
      checkpoint.restore(path).assert_existing_objects_matched()
      return path
    except UNREADABLE as e:
      logging.warning('checkpoint %s is unreadable (%s); trying the one '
                      'before it', path, errors.error_line(e))
  if candidates:
    raise errors.ConfigError(_none_readable(manager.directory, candidates))
  return None


def _none_readable(directory: str, paths) -> str:
  return (f'none of the checkpoints in {directory} can be read '
          f'({", ".join(os.path.basename(p) for p in paths)}); move them '
          'away to start afresh')


def check_some_readable(run_dir: str) -> None:
  """Raises ConfigError if run_dir's checkpoints are listed but none of them
  reads cleanly (its index, every tensor and its checksum).

  The chief checks this before it writes anything in the run directory: a
  run whose every checkpoint is damaged is refused with its files as they
  were, instead of failing at its restore after its config, lease and
  TensorBoard files were written.
  """
  directory = os.path.join(run_dir, 'checkpoints')
  state = tf.train.get_checkpoint_state(directory)
  if state is None:
    return
  paths = (list(reversed(state.all_model_checkpoint_paths))
           or [state.model_checkpoint_path])
  for path in paths:
    try:
      reader = tf.train.load_checkpoint(path)
      for name in reader.get_variable_to_shape_map():
        reader.get_tensor(name)
      return
    except UNREADABLE:
      continue
  raise errors.ConfigError(_none_readable(directory, paths))


def checkpoint_bytes(run_dir: str, latest: Optional[str]) -> int:
  """Bytes one checkpoint takes: the newest model checkpoint's files and the
  newest replay checkpoint of each bundle."""
  total = 0
  if latest:
    folder, prefix = os.path.split(latest)
    total += sum(os.path.getsize(os.path.join(folder, n))
                 for n in os.listdir(folder) if n.startswith(prefix + '.'))
  replay = os.path.join(run_dir, 'replay')
  for bundle in (os.listdir(replay) if os.path.isdir(replay) else []):
    versions = sorted(os.listdir(os.path.join(replay, bundle)))
    if versions:
      newest = os.path.join(replay, bundle, versions[-1])
      total += sum(os.path.getsize(os.path.join(root, n))
                   for root, _, names in os.walk(newest) for n in names)
  return total


def after_disk_full(what: str, run_dir: str, latest: Optional[str],
                    min_free_mb: int) -> str:
  """The one line a full run directory stops the run with."""
  need_mb = max(min_free_mb, 2 * checkpoint_bytes(run_dir, latest) // (1 << 20) + 1)
  kept = (f'the newest checkpoint {latest} is intact and the run resumes from '
          'it' if latest else 'no checkpoint had been written yet, so the run '
          'starts afresh')
  return (f'{what}: training stopped and nothing was lost; free at least '
          f'{need_mb} MB in {run_dir} (two checkpoints, or '
          f'run.min_free_disk_mb) and run the same command again: {kept}')


def all_finite(arrays) -> bool:
  """True if no array holds a NaN or an infinity."""
  return all(bool(np.all(np.isfinite(a))) for a in arrays)


def replay_checkpoint_dir(run_dir: str, bundle: int) -> str:
  return os.path.join(run_dir, REPLAY_DIR, f'bundle_{bundle}')


REPLAY_FILES = ('tables.tfrecord', 'chunks.tfrecord', 'items.tfrecord')


def newest_replay_checkpoint(directory: str) -> Optional[str]:
  """The checkpoint Reverb loads from `directory`: its newest complete one
  (a timestamped subdirectory holding DONE), or None."""
  if not os.path.isdir(directory):
    return None
  done = sorted(name for name in os.listdir(directory)
                if os.path.exists(os.path.join(directory, name, 'DONE')))
  return os.path.join(directory, done[-1]) if done else None


def _zlib_problem(path: str) -> Optional[str]:
  """Why `path` is not one whole ZLIB stream, or None. (TensorFlow's
  reader takes a stream cut short, even to nothing, for fewer records;
  Reverb's refuses it.)"""
  stream = zlib.decompressobj()
  try:
    with open(path, 'rb') as f:
      while block := f.read(1 << 20):
        while block:  # what one call leaves unread, in bounded pieces
          stream.decompress(block, 1 << 24)
          block = stream.unconsumed_tail
  except zlib.error as e:
    return f'not a ZLIB stream ({e})'
  return None if stream.eof else 'cut short'


def replay_checkpoint_problem(checkpoint: str) -> Optional[str]:
  """Why Reverb could not load `checkpoint`, or None when each of its files
  is one whole ZLIB stream (as Reverb writes them) whose records all pass
  their checksums."""
  for name in REPLAY_FILES:
    path = os.path.join(checkpoint, name)
    if not os.path.exists(path):
      return f'{name} is missing'
    problem = _zlib_problem(path)
    if problem:
      return f'{name} cannot be read ({problem})'
    try:
      records = sum(1 for _ in tf.data.TFRecordDataset(path, 'ZLIB'))
    except tf.errors.OpError as e:
      return f'{name} cannot be read ({errors.first_line(e.message, 120)})'
    if name == 'tables.tfrecord' and records == 0:
      return f'{name} holds no table'
  return None


def set_aside_unreadable_replay(run_dir: Optional[str], bundle: int) -> Optional[str]:
  """Moves bundle `bundle`'s replay checkpoint aside if it cannot be read,
  so that its server starts (empty) instead of failing at every restart.

  Returns the line that says what was done, or None when there was nothing
  to do. The files are kept, renamed, for whoever wants to look at them.
  """
  if not run_dir:
    return None
  directory = replay_checkpoint_dir(run_dir, bundle)
  checkpoint = newest_replay_checkpoint(directory)
  problem = checkpoint and replay_checkpoint_problem(checkpoint)
  if not problem:
    return None
  aside = f'{directory}.unreadable-{time.strftime("%Y%m%d-%H%M%S")}'
  os.rename(directory, aside)
  return (f'bundle {bundle}: the replay checkpoint {checkpoint} cannot be '
          f'loaded: {problem}; moved, as it was, to {aside}; this bundle starts '
          'with an empty replay (its learner waits for replay.min_size '
          'transitions again); the model checkpoints are not affected')


def replay_checkpointer(run_dir: Optional[str], bundle: int):
  """The checkpointer a bundle's Reverb server loads from and saves to.

  Nothing is created here: Reverb makes the directory at the first
  checkpoint, which only the chief asks for (holding the run directory's
  lease), and loads nothing from a directory that is not there.
  """
  if not run_dir:
    return None  # no shared run directory: replay is not checkpointed
  return reverb.checkpointers.DefaultCheckpointer(
      replay_checkpoint_dir(run_dir, bundle))


class ReplayCheckpoints:
  """Asks each bundle to checkpoint its replay table, in a thread per bundle.

  Reverb keeps only the newest replay checkpoint of each server, and a
  checkpoint call has no deadline: it runs off the chief's loop, so a bundle
  that stops answering mid-checkpoint holds up nothing. A bundle that is
  unresponsive, or still busy with the previous request, is skipped (its
  previous replay checkpoint stays) and the skip is counted by the caller.
  """

  def __init__(self, addresses: list[str]):
    self._addresses = list(addresses)
    self._threads: list[Optional[threading.Thread]] = [None] * len(addresses)

  def request(self, responsive: list[bool]) -> tuple[list[int], list[int]]:
    """Starts a checkpoint of every responsive, idle bundle: (asked, skipped)."""
    asked, skipped = [], []
    for bundle, address in enumerate(self._addresses):
      busy = self._threads[bundle] is not None and self._threads[bundle].is_alive()
      if busy or not responsive[bundle]:
        skipped.append(bundle)
        continue
      thread = threading.Thread(target=_checkpoint_one, args=(bundle, address),
                                name=f'replay-checkpoint-{bundle}', daemon=True)
      thread.start()
      self._threads[bundle] = thread
      asked.append(bundle)
    return asked, skipped

  def wait(self, timeout_s: float) -> None:
    """Waits up to `timeout_s` for the requests in progress (at the end of a run)."""
    deadline = time.monotonic() + timeout_s
    for thread in self._threads:
      if thread is not None:
        thread.join(max(0.0, deadline - time.monotonic()))


def _checkpoint_one(bundle: int, address: str) -> None:
  try:
    reverb.Client(address).checkpoint()
  except Exception as e:  # pylint: disable=broad-except
    # A thread of its own: whatever Reverb raises (on a full disk its client
    # raised IndexError, and the thread printed a traceback) is one line; the
    # chief's own writes say a full disk and stop the run.
    logging.warning('replay of bundle %d not checkpointed: %s', bundle,
                    errors.error_line(e, 300))
