"""Checkpoints written by a process of their own, so a silent bundle cannot hold them up.

Why a process: the chief's TensorFlow context is connected to every task of
the cluster, and writing a checkpoint in it waits on every worker. Measured
on this project's cluster: while one bundle was paused (SIGSTOP),
`tf.train.Checkpoint.write` in the chief blocked until the bundle answered
again, even for a checkpoint of chief-local variables only, and TF re-traces
a save function for every checkpoint of variables spread over several tasks,
which blocks the same way. Functions traced before the pause, which read the
ps tasks only, kept working.

So the chief reads its checkpoint items with one function traced at start
(`ShardedModel.read_state`) and hands the values to this writer, a child
process with no cluster: it holds a plain copy of the same items (same
object graph, shards joined: `model.build_plain_model`) and saves it with a
`tf.train.CheckpointManager`. The files are ordinary object-based
checkpoints: the chief restores them into its sharded model, and evaluators,
`gorila-play` and `gorila-export` into a plain network.

The writer's loop:

    mirror = build the plain model; manager = CheckpointManager(mirror)
    for each request (number, values) from the chief:
      assign the values; path = manager.save(number)
      answer the path, or one line saying why it could not be written
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from typing import Callable, Sequence

import numpy as np
from absl import logging

from gorila_tf import errors

START_TIMEOUT_S = 300.0  # importing TensorFlow in the child, on a busy machine
SAVE_TIMEOUT_S = 600.0  # a save that takes longer than this: the writer is stuck


# The other end of the pipe is gone: the chief (seen from the writer) or the
# writer (seen from the chief).
PIPE_CLOSED = (BrokenPipeError, ConnectionResetError, EOFError)


def _serve(connection, directory: str, max_to_keep: int,
           build_plain_model: Callable) -> None:
  """The writer process: answers ('ok', path) or ('error', why) per request."""
  # The launcher signals the chief's whole process group; the writer must
  # outlive that signal to write the chief's last checkpoint. It stops when
  # asked, or when the chief is gone (EOF).
  signal.signal(signal.SIGTERM, signal.SIG_IGN)
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  try:
    _answer_requests(connection, directory, max_to_keep, build_plain_model)
  except PIPE_CLOSED:
    # Killed while this writer started or saved (a chaos run printed the
    # BrokenPipeError's traceback): nobody is left to answer.
    return


def _answer_requests(connection, directory: str, max_to_keep: int,
                     build_plain_model: Callable) -> None:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  mirror = build_plain_model()
  variables = mirror.state_variables()
  manager = tf.train.CheckpointManager(mirror.checkpoint(), directory,
                                       max_to_keep=max_to_keep)
  connection.send(('ready', None))
  while True:
    request = connection.recv()
    if request[0] == 'stop':
      return
    _, number, values = request
    try:
      for variable, value in zip(variables, values):
        variable.assign(value)
      reply = ('ok', manager.save(checkpoint_number=number))
    except (OSError, tf.errors.OpError) as e:
      why = getattr(e, 'strerror', None) or getattr(e, 'message', None) or str(e)
      reply = ('error', why.splitlines()[0] if why else repr(e))
    connection.send(reply)


class WriterGone(errors.Stuck):
  """The writer process is gone (killed or crashed). Not bad input: when
  writers started again for one save keep dying, the chief exits for a
  restart (errors.Stuck) and resumes from its last checkpoint."""


WRITER_STARTS = 3  # writers one save may use: two faults at once killed two


@contextlib.contextmanager
def _ignoring_stop_signals():
  """SIGTERM and SIGINT ignored inside (main thread only: elsewhere, as is)."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  previous = {s: signal.signal(s, signal.SIG_IGN)
              for s in (signal.SIGTERM, signal.SIGINT)}
  try:
    yield
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)


class CheckpointWriter:
  """Chief side: starts the writer process and asks it for checkpoints."""

  def __init__(self, directory: str, max_to_keep: int,
               build_plain_model: Callable):
    """Starts the writer; `build_plain_model()` must be picklable."""
    self._args = (directory, max_to_keep, build_plain_model)
    self.latest_checkpoint: str | None = None
    self.restarts = 0
    self._start()

  def _start(self) -> None:
    context = multiprocessing.get_context('spawn')
    self._connection, child = context.Pipe()
    self._process = context.Process(target=_serve, args=(child, *self._args),
                                    name='checkpoint-writer', daemon=True)
    # Started ignoring SIGTERM/SIGINT (inherited through exec): a stop that
    # comes while it is still importing TensorFlow, before _serve runs, must
    # not kill the writer of the chief's last checkpoint.
    with _ignoring_stop_signals():
      self._process.start()
    child.close()
    self._ready = False

  def save(self, number: int, values: Sequence[np.ndarray]) -> str:
    """Writes checkpoint `number` of the values; returns its path.

    A writer that died (killed, crashed) is started again and asked once
    more, up to WRITER_STARTS writers in all: what it was writing is left
    unfinished, which TensorFlow's checkpoints survive (the index is written
    last). Then WriterGone (a restart of the chief).
    """
    for _ in range(WRITER_STARTS - 1):
      try:
        return self._save(number, values)
      except WriterGone as e:
        logging.warning('checkpoint writer: %s; starting a new one', e)
        self.restarts += 1
        self._process.join(timeout=5)
        self._start()
    try:
      return self._save(number, values)
    except WriterGone as e:
      raise WriterGone(f'checkpoint {number}: {WRITER_STARTS} checkpoint '
                       f'writers in a row exited, the last: {e}') from None

  @property
  def pid(self) -> int | None:
    """The writer process's pid (for fault injection and tests)."""
    return self._process.pid

  def abandon(self, timeout_s: float) -> int | None:
    """Leaves the writer as a chief that died does (its end of the pipe
    closed, no 'stop'); the writer's exit status once it is gone (tests)."""
    self._connection.close()
    self._process.join(timeout=timeout_s)
    return self._process.exitcode

  def _save(self, number: int, values: Sequence[np.ndarray]) -> str:
    try:
      if not self._ready:
        self._answer(START_TIMEOUT_S, 'start')
        self._ready = True
      self._connection.send(('save', number, list(values)))
    except PIPE_CLOSED:
      raise WriterGone(f'the writer exited (status {self._process.exitcode})') from None
    path = self._answer(SAVE_TIMEOUT_S, 'save')
    self.latest_checkpoint = path
    return path

  def _answer(self, timeout_s: float, what: str):
    if not self._connection.poll(timeout_s):
      raise errors.CheckpointNotWritten(f'the checkpoint writer did not {what} within '
                                        f'{timeout_s:.0f} s')
    try:
      kind, payload = self._connection.recv()
    except PIPE_CLOSED:
      raise WriterGone(f'the writer exited (status {self._process.exitcode})'
                       ) from None
    if kind == 'error':
      raise errors.CheckpointNotWritten(payload)
    return payload

  def close(self) -> None:
    try:
      self._connection.send(('stop',))
    except (BrokenPipeError, OSError):
      pass
    self._process.join(timeout=10)
    if self._process.is_alive():
      self._process.kill()
