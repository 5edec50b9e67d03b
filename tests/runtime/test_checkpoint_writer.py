"""The checkpoint writer: a child process with no cluster writes the chief's
checkpoints from values the chief read, in the model's own checkpoint layout."""

import functools
import os
import signal
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from gorila_tf import config as config_lib
from gorila_tf import errors
from gorila_tf.agent import environments
from gorila_tf.agent import networks
from gorila_tf.runtime import builder
from gorila_tf.runtime import checkpoint_writer
from gorila_tf.runtime import model as model_lib


def cartpole():
  config = config_lib.resolve('cartpole')
  return config, environments.env_info(config.env)


def plain_model(config, info, seed_shift=0.0):
  q = networks.make_q_network(config.network, info)
  model = model_lib.build_plain_model(builder.DQNBuilder(config, info), num_workers=2,
                                      part_shapes=[tuple(p.shape) for p in q.params])
  for i, v in enumerate(model.state_variables()):
    v.assign(tf.cast(tf.fill(v.shape, i + seed_shift), v.dtype))
  return model


def writer_for(directory, config, info, source, max_to_keep):
  """A checkpoint writer whose child builds plain models shaped as `source`."""
  return checkpoint_writer.CheckpointWriter(
      str(directory), max_to_keep=max_to_keep,
      build_plain_model=functools.partial(
          model_lib.build_plain_model, builder.DQNBuilder(config, info), 2,
          source.part_shapes()))


@pytest.mark.cluster
def test_a_checkpoint_written_by_the_writer_restores_every_item_exactly(tmp_path):
  config, info = cartpole()
  source = plain_model(config, info, seed_shift=0.5)
  values = [v.numpy() for v in source.state_variables()]
  writer = writer_for(tmp_path, config, info, source, max_to_keep=2)
  try:
    path = writer.save(42, values)
  finally:
    writer.close()
  assert path.endswith('ckpt-42') and writer.latest_checkpoint == path
  restored = plain_model(config, info)
  restored.checkpoint().restore(path).assert_consumed()
  for got, want in zip(restored.state_variables(), values):
    np.testing.assert_array_equal(got.numpy(), want)
  # The evaluator's way: the online network alone, into a plain network.
  q = networks.make_q_network(config.network, info, seed=9)
  tf.train.Checkpoint(q_network=q).restore(path).expect_partial()
  np.testing.assert_array_equal(q.params[0].numpy(), values[0])


@pytest.mark.cluster
def test_an_unwritable_directory_is_one_line_from_the_writer(tmp_path):
  config, info = cartpole()
  source = plain_model(config, info)
  blocked = tmp_path / 'file'
  blocked.write_text('not a directory')
  writer = writer_for(blocked / 'checkpoints', config, info, source,
                      max_to_keep=2)
  try:
    with pytest.raises(errors.CheckpointNotWritten) as raised:
      writer.save(1, [v.numpy() for v in source.state_variables()])
  finally:
    writer.close()
  assert '\n' not in str(raised.value) and str(raised.value)
  assert not os.path.exists(blocked / 'checkpoints')


@pytest.mark.cluster
def test_a_killed_writer_is_started_again_and_the_checkpoint_written(tmp_path):
  config, info = cartpole()
  source = plain_model(config, info, seed_shift=0.25)
  values = [v.numpy() for v in source.state_variables()]
  writer = writer_for(tmp_path, config, info, source, max_to_keep=3)
  try:
    first = writer.save(1, values)
    os.kill(writer.pid, signal.SIGKILL)  # a fault during the run
    second = writer.save(2, values)
  finally:
    writer.close()
  assert first.endswith('ckpt-1') and second.endswith('ckpt-2')
  assert writer.restarts == 1
  assert tf.train.latest_checkpoint(str(tmp_path)) == second


def kill_writers(writer, count):
  """SIGKILLs the writer in place, then each new one the chief starts, until
  `count` are killed (the chaos run's two kill_writer faults at once); a
  thread, joined when its writers are dead."""
  killed = []

  def watch():
    pid, deadline = None, time.monotonic() + 300
    while len(killed) < count and time.monotonic() < deadline:
      if writer.pid != pid and writer.pid is not None:
        pid = writer.pid
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
      time.sleep(0.02)

  thread = threading.Thread(target=watch, daemon=True)
  thread.start()
  while not killed:
    time.sleep(0.02)
  return thread


@pytest.mark.cluster
def test_writers_killed_one_after_another_are_started_again_then_a_restart(
    tmp_path):
  # A 30-minute chaos run's chief stopped the run (exit 2, "cannot write a
  # checkpoint") when the writer started again after a kill was killed too.
  config, info = cartpole()
  source = plain_model(config, info)
  values = [v.numpy() for v in source.state_variables()]
  writer = writer_for(tmp_path, config, info, source, max_to_keep=3)
  try:
    writer.save(1, values)
    killer = kill_writers(writer, checkpoint_writer.WRITER_STARTS - 1)
    assert writer.save(2, values).endswith('ckpt-2')
    killer.join()
    assert writer.restarts == checkpoint_writer.WRITER_STARTS - 1
    killer = kill_writers(writer, checkpoint_writer.WRITER_STARTS)
    with pytest.raises(errors.Stuck, match=r'checkpoint 3: 3 checkpoint '
                       r'writers in a row exited, the last: the writer exited'):
      writer.save(3, values)
    killer.join()
  finally:
    writer.close()
  assert tf.train.latest_checkpoint(str(tmp_path)).endswith('ckpt-2')


def _replay_checkpoint(run_dir, bundle=0, items=40):
  """A real Reverb checkpoint of a small table under run_dir's replay/."""
  import reverb  # pylint: disable=g-import-not-at-top
  from gorila_tf.runtime import checkpointing  # pylint: disable=g-import-not-at-top
  table = lambda: reverb.Table('t', reverb.selectors.Uniform(),
                               reverb.selectors.Fifo(), 1000,
                               reverb.rate_limiters.MinSize(1))
  server = reverb.Server([table()], checkpointer=checkpointing.replay_checkpointer(
      run_dir, bundle))
  client = reverb.Client(f'localhost:{server.port}')
  for i in range(items):
    client.insert([np.full(64, i, np.int32)], {'t': 1.0})
  client.checkpoint()
  server.stop()
  return table


def test_an_unreadable_replay_checkpoint_is_set_aside_and_the_bundle_starts_empty(
    tmp_path):
  # Reverb's server fails at every start on a garbled checkpoint ("corrupted
  # record at 0"): a worker restarted until --max_restarts gave up, and the
  # run could not be resumed. Read through first, it is moved aside, kept.
  import reverb  # pylint: disable=g-import-not-at-top
  from gorila_tf.runtime import checkpointing  # pylint: disable=g-import-not-at-top
  run_dir = str(tmp_path)
  table = _replay_checkpoint(run_dir)
  assert checkpointing.set_aside_unreadable_replay(run_dir, 0) is None  # intact
  newest = checkpointing.newest_replay_checkpoint(
      checkpointing.replay_checkpoint_dir(run_dir, 0))
  chunks = os.path.join(newest, 'chunks.tfrecord')
  data = open(chunks, 'rb').read()
  with open(chunks, 'wb') as f:
    f.write(data[:20] + b'garbage!' + data[28:])
  line = checkpointing.set_aside_unreadable_replay(run_dir, 0)
  assert line.startswith(f'bundle 0: the replay checkpoint {newest} cannot be '
                         'loaded: chunks.tfrecord cannot be read')
  assert 'starts with an empty replay' in line
  aside = [d for d in os.listdir(os.path.join(run_dir, 'replay'))
           if d.startswith('bundle_0.unreadable-')]
  assert len(aside) == 1  # kept as it was
  moved = os.path.join(run_dir, 'replay', aside[0], os.path.basename(newest),
                       'chunks.tfrecord')
  assert open(moved, 'rb').read() == data[:20] + b'garbage!' + data[28:]
  server = reverb.Server([table()], checkpointer=checkpointing.replay_checkpointer(
      run_dir, 0))  # starts: nothing left to load
  assert server.localhost_client().server_info()['t'].current_size == 0
  server.stop()


def test_a_truncated_replay_file_is_unreadable_too(tmp_path):
  from gorila_tf.runtime import checkpointing  # pylint: disable=g-import-not-at-top
  _replay_checkpoint(str(tmp_path))
  newest = checkpointing.newest_replay_checkpoint(
      checkpointing.replay_checkpoint_dir(str(tmp_path), 0))
  # Each of these made Reverb's server fail to start ("corrupted record at
  # 0"), though TensorFlow's reader takes all but the last for fewer records.
  for name, size in (('items.tfrecord', 7), ('items.tfrecord', -4),
                     ('chunks.tfrecord', -1), ('tables.tfrecord', 0)):
    path = os.path.join(newest, name)
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
      f.write(data[:size])
    assert checkpointing.replay_checkpoint_problem(newest).startswith(name)
    with open(path, 'wb') as f:
      f.write(data)
  assert checkpointing.replay_checkpoint_problem(newest) is None


@pytest.mark.cluster
def test_a_writer_whose_chief_is_gone_exits_quietly(tmp_path):
  # A chaos run's chief was killed while its writer started: the writer's
  # 'ready' met a broken pipe and multiprocessing printed the traceback.
  config, info = cartpole()
  source = plain_model(config, info)
  writer = writer_for(tmp_path, config, info, source, max_to_keep=1)
  assert writer.abandon(timeout_s=120) == 0  # a traceback exits 1
