"""The distributed replay memory: one Reverb table per bundle.

Storage layout (each frame stored once): every actor env has its own Reverb
`TrajectoryWriter`. A row holds the newest frame and the action, reward and
discount that led to it. An item (one transition) references the last
`frame_stack + 1` rows: frames[:-1] is the state s, frames[1:] the next state
s', and the action/reward/discount columns of the last row describe the step
s -> s'. Consecutive items share rows, and Reverb stores the rows once in
compressed chunks instead of two stacked observations per transition.

At the start of an episode the writer writes `frame_stack` rows for the frames
of the reset observation's stack, without items, so every state the agent
acted on can be rebuilt exactly.

Learners read the table through Reverb's tf.data `TrajectoryDataset`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import reverb
import tensorflow as tf

from gorila_tf import config as config_lib
from gorila_tf import environments

REPLAY_TABLE = 'replay'


def transition_signature(info: environments.EnvInfo) -> dict[str, tf.TensorSpec]:
  """Signature of one replay item."""
  return {
      'frames': tf.TensorSpec((info.frame_stack + 1,) + info.frame_shape,
                              tf.as_dtype(info.frame_dtype)),
      'action': tf.TensorSpec((), tf.int32),
      'reward': tf.TensorSpec((), tf.float32),
      'discount': tf.TensorSpec((), tf.float32),
  }


def error_buffer(replay: config_lib.ReplayConfig,
                 learner: config_lib.LearnerConfig) -> float:
  """Slack of the sample/insert ratio, in samples.

  Large enough for a few closures' worth of batches and 10% of the warm-up,
  so actors and learners are not forced into lock-step.
  """
  spi = replay.samples_per_insert
  return max(2.0 * max(1.0, spi),
             4.0 * learner.batch_size * learner.steps_per_closure,
             0.1 * replay.min_size * spi)


def make_replay_table(config: config_lib.GorilaConfig,
                      info: environments.EnvInfo) -> reverb.Table:
  """A bundle's replay table: uniform sampling, FIFO eviction."""
  replay = config.replay
  if replay.samples_per_insert > 0:
    limiter = reverb.rate_limiters.SampleToInsertRatio(
        samples_per_insert=replay.samples_per_insert,
        min_size_to_sample=replay.min_size,
        error_buffer=error_buffer(replay, config.learner))
  else:
    limiter = reverb.rate_limiters.MinSize(replay.min_size)
  return reverb.Table(
      name=REPLAY_TABLE,
      sampler=reverb.selectors.Uniform(),
      remover=reverb.selectors.Fifo(),
      max_size=replay.capacity,
      rate_limiter=limiter,
      signature=transition_signature(info))


class TransitionWriter:
  """Writes one env's experience into a replay table, each frame once.

  Backpressure: when the table's rate limiter holds inserts back (learners
  behind the sample/insert ratio), `add` blocks once `max_pending_items` of
  this writer's items wait for confirmation, instead of piling them up in
  memory and stalling at the end of the episode.
  """

  def __init__(self, client: reverb.Client, frame_stack: int,
               table: str = REPLAY_TABLE, max_pending_items: int = 32):
    self._stack = frame_stack
    self._table = table
    self._max_pending = max_pending_items
    self._writer = client.trajectory_writer(num_keep_alive_refs=frame_stack + 1)

  def begin_episode(self, observation: np.ndarray) -> None:
    """Writes the frames of a reset observation [frame_stack, *frame]."""
    for frame in observation:
      self._writer.append({'frame': frame, 'action': np.int32(0),
                           'reward': np.float32(0), 'discount': np.float32(1)})

  def add(self, next_frame: np.ndarray, action: int, reward: float,
          discount: float) -> None:
    """Appends the step's newest frame and inserts the transition."""
    self._writer.append({'frame': next_frame, 'action': np.int32(action),
                         'reward': np.float32(reward),
                         'discount': np.float32(discount)})
    history = self._writer.history
    self._writer.create_item(
        table=self._table, priority=1.0,
        trajectory={
            'frames': history['frame'][-(self._stack + 1):],
            'action': history['action'][-1],
            'reward': history['reward'][-1],
            'discount': history['discount'][-1],
        })
    # Waits only while more than max_pending items are unconfirmed; items whose
    # chunks are still open do not count, so chunks are never cut short.
    self._writer.flush(block_until_num_items=self._max_pending)

  def end_episode(self) -> None:
    """Sends pending items and forgets the episode's rows."""
    self._writer.end_episode(clear_buffers=True)

  def close(self, timeout_ms: int = 5_000) -> None:
    """Sends what is pending (unless the table keeps refusing) and closes."""
    try:
      self._writer.flush(timeout_ms=timeout_ms)
    except (reverb.errors.DeadlineExceededError, RuntimeError):
      pass  # the server is gone or rate-limited: those items are dropped
    self._writer.close()


def split_frames(batch: dict[str, tf.Tensor], frame_stack: int) -> dict[str, tf.Tensor]:
  """Turns a batch of items into (observation, action, reward, discount, next)."""
  frames = batch['frames']
  return {
      'observation': frames[:, :frame_stack],
      'action': batch['action'],
      'reward': batch['reward'],
      'discount': batch['discount'],
      'next_observation': frames[:, 1:],
  }


def make_dataset(server_addresses: tf.Tensor | Sequence[str],
                 info: environments.EnvInfo, batch_size: int) -> tf.data.Dataset:
  """Batches of transitions sampled from one or more bundles' tables.

  Args:
    server_addresses: a 1-D string tensor (or list) of Reverb addresses; with
      several, samples are interleaved from all of them (global replay).
    info: the game's shapes.
    batch_size: transitions per batch.

  Returns:
    An endless dataset of dicts from `split_frames`.
  """
  signature = transition_signature(info)
  dtypes = tf.nest.map_structure(lambda s: s.dtype, signature)
  shapes = tf.nest.map_structure(lambda s: s.shape, signature)

  def from_server(address):
    dataset = reverb.TrajectoryDataset(
        server_address=address, table=REPLAY_TABLE, dtypes=dtypes,
        shapes=shapes, max_in_flight_samples_per_worker=2 * batch_size)
    return dataset.map(lambda sample: sample.data)

  addresses = tf.convert_to_tensor(server_addresses, tf.string)
  num_servers = addresses.shape[0]
  if num_servers is None:
    raise ValueError('server_addresses needs a static length')
  # Every server's stream is endless, so the cycle must hold all of them.
  dataset = tf.data.Dataset.from_tensor_slices(addresses).interleave(
      from_server, cycle_length=num_servers, block_length=1,
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
  dataset = dataset.batch(batch_size, drop_remainder=True)
  dataset = dataset.map(lambda b: split_frames(b, info.frame_stack))
  return dataset.prefetch(2)
