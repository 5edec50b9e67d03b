"""The replay layout on a real Reverb server: frames once, states rebuilt exactly."""

import dataclasses
import threading
import time

import numpy as np
import pytest
import reverb
import tensorflow as tf

from gorila_tf import config as config_lib
from gorila_tf.agent import environments
from gorila_tf.agent import replay

# A toy game whose frame k is [k, k]: every field of an item can be checked.
INFO = environments.EnvInfo('toy', (2,), np.dtype(np.float32), 3, 2, 1)


def _config(**replay_overrides):
  config = config_lib.resolve('cartpole')
  return dataclasses.replace(config, replay=dataclasses.replace(
      config.replay, min_size=1, samples_per_insert=0.0, **replay_overrides))


@pytest.fixture
def server():
  s = reverb.Server([replay.make_replay_table(_config(), INFO)])
  yield s
  s.stop()


def frame(k):
  return np.full(2, k, np.float32)


def write_episode(writer, first, steps, terminal_last=True):
  """Reset stack [first, first+1, first+2], then `steps` steps."""
  writer.begin_episode(np.stack([frame(first + i) for i in range(3)]))
  for j in range(steps):
    k = first + 3 + j
    last = j == steps - 1
    writer.add(frame(k), action=k % 2, reward=0.5 * k,
               discount=0.0 if (last and terminal_last) else 1.0)
  writer.end_episode()


def sample_all(server, n, n_step=1):
  dataset = replay.make_dataset([f'localhost:{server.port}'], INFO, batch_size=n,
                                n_step=n_step)
  return next(iter(dataset))


def test_each_transition_is_one_item_and_no_item_spans_episodes(server):
  client = server.localhost_client()
  writer = replay.TransitionWriter(client, INFO.frame_stack)
  write_episode(writer, first=0, steps=6)
  write_episode(writer, first=100, steps=4)
  writer.close()
  assert client.server_info()[replay.REPLAY_TABLE].current_size == 10
  batch = sample_all(server, 64)
  obs = batch['observation'].numpy()[..., 0]  # [B, 3] frame numbers
  nxt = batch['next_observation'].numpy()[..., 0]
  # s' is s shifted by one frame; frames in an item are consecutive.
  np.testing.assert_array_equal(obs[:, 1:], nxt[:, :-1])
  np.testing.assert_array_equal(nxt[:, -1], obs[:, -1] + 1)
  # Every state lies within one episode (0..8 or 100..106).
  assert np.all((nxt[:, -1] <= 8) | (obs[:, 0] >= 100))
  # The step's action/reward belong to the newest frame of s'.
  k = nxt[:, -1]
  np.testing.assert_array_equal(batch['action'].numpy(), k % 2)
  np.testing.assert_allclose(batch['reward'].numpy()[:, 0], 0.5 * k)


def test_first_state_of_an_episode_is_the_reset_stack(server):
  writer = replay.TransitionWriter(server.localhost_client(), INFO.frame_stack)
  write_episode(writer, first=10, steps=1)
  writer.close()
  batch = sample_all(server, 4)
  np.testing.assert_array_equal(batch['observation'].numpy()[0, :, 0], [10, 11, 12])
  np.testing.assert_array_equal(batch['next_observation'].numpy()[0, :, 0], [11, 12, 13])
  assert batch['discount'].numpy()[0, 0] == 0.0  # the episode's terminal step


def n_step_server(n_step):
  config = dataclasses.replace(_config(), learner=dataclasses.replace(
      _config().learner, n_step=n_step))
  return reverb.Server([replay.make_replay_table(config, INFO)])


def test_n_step_items_cover_n_steps_and_pad_the_episode_end():
  server = n_step_server(3)
  writer = replay.TransitionWriter(server.localhost_client(), INFO.frame_stack,
                                   n_step=3)
  write_episode(writer, first=0, steps=5)  # steps reach frames 3..7; 7 terminal
  writer.close()
  # One item per step, including the last two completed with padding.
  assert server.localhost_client().server_info()[replay.REPLAY_TABLE].current_size == 5
  batch = sample_all(server, 200, n_step=3)
  obs = batch['observation'].numpy()[..., 0]
  nxt = batch['next_observation'].numpy()[..., 0]
  rewards, discounts = batch['reward'].numpy(), batch['discount'].numpy()
  by_start = {int(o[-1]): (n, r, d) for o, n, r, d in zip(obs, nxt, rewards, discounts)}
  assert sorted(by_start) == [2, 3, 4, 5, 6]  # the newest frame of each state
  # State ending at frame 2 (the reset stack): next state 3 steps later ends
  # at frame 5; rewards of frames 3, 4, 5 (0.5 k); all continuing.
  n, r, d = by_start[2]
  np.testing.assert_array_equal(n, [3, 4, 5])
  np.testing.assert_allclose(r, [1.5, 2.0, 2.5])
  np.testing.assert_array_equal(d, [1, 1, 1])
  # State ending at frame 6: one real step (to terminal frame 7), then padding
  # with discount 0 and reward 0 (the return stops at the episode's end).
  n, r, d = by_start[6]
  np.testing.assert_allclose(r, [3.5, 0.0, 0.0])
  np.testing.assert_array_equal(d, [0, 0, 0])
  server.stop()


def test_n_step_episode_shorter_than_n_still_gives_its_transitions():
  server = n_step_server(4)
  writer = replay.TransitionWriter(server.localhost_client(), INFO.frame_stack,
                                   n_step=4)
  write_episode(writer, first=0, steps=2)
  write_episode(writer, first=50, steps=1)
  writer.close()
  assert server.localhost_client().server_info()[replay.REPLAY_TABLE].current_size == 3
  server.stop()


def test_global_dataset_samples_from_every_server():
  servers = [reverb.Server([replay.make_replay_table(_config(), INFO)])
             for _ in range(2)]
  for base, s in zip((0, 1000), servers):
    writer = replay.TransitionWriter(s.localhost_client(), INFO.frame_stack)
    write_episode(writer, first=base, steps=5)
    writer.close()
  dataset = replay.make_dataset([f'localhost:{s.port}' for s in servers], INFO,
                                batch_size=32)
  iterator = iter(dataset)
  # The interleave is not deterministic: on a busy machine one server can
  # fill the first batches; both must show up within 100.
  seen = set()
  for _ in range(100):
    frames = next(iterator)['observation'].numpy()[:, 0, 0]
    seen |= {bool(f >= 1000) for f in frames}
    if seen == {False, True}:
      break
  assert seen == {False, True}
  for s in servers:
    s.stop()


def test_rate_limited_table_allows_samples_only_from_min_size():
  config = dataclasses.replace(base_config := config_lib.resolve('cartpole'),
                               replay=dataclasses.replace(
                                   base_config.replay, min_size=4,
                                   samples_per_insert=2.0))
  table = replay.make_replay_table(config, INFO)
  server = reverb.Server([table])
  writer = replay.TransitionWriter(server.localhost_client(), INFO.frame_stack)
  write_episode(writer, first=0, steps=2)
  assert not table.can_sample(1)
  write_episode(writer, first=50, steps=2)
  assert table.can_sample(1)
  writer.close()
  server.stop()


def test_error_buffer_leaves_room_for_several_closures_of_batches():
  config = config_lib.resolve('pong')
  buffer = replay.error_buffer(config.replay, config.learner)
  assert buffer >= 4 * config.learner.batch_size * config.learner.steps_per_closure
  assert buffer >= 2 * config.replay.samples_per_insert


def test_signature_holds_stack_plus_one_frames():
  sig = replay.transition_signature(INFO)
  assert sig['frames'].shape == (4, 2)
  assert sig['frames'].dtype == tf.float32


def test_an_injected_delay_slows_every_batch(server):
  import time  # pylint: disable=g-import-not-at-top
  writer = replay.TransitionWriter(server.localhost_client(), INFO.frame_stack)
  write_episode(writer, first=0, steps=4)
  writer.close()
  dataset = replay.make_dataset([f'localhost:{server.port}'], INFO, batch_size=2,
                                delay_ms=tf.constant(200))
  iterator = iter(dataset)
  next(iterator)
  start = time.monotonic()
  for _ in range(3):
    next(iterator)
  assert time.monotonic() - start >= 0.55  # 3 x 200 ms


def test_importance_weights_by_hand():
  # N P = [1, 2, 4] with beta 0.5: [1, 2^-0.5, 4^-0.5] / 1 = [1, 0.7071, 0.5]
  w = replay.importance_weights(tf.constant([0.1, 0.2, 0.4], tf.float64),
                                tf.constant([10, 10, 10], tf.int64), 0.5)
  np.testing.assert_allclose(w, [1.0, 2 ** -0.5, 0.5], rtol=1e-6)


def unsampled_table_and_writer(stop=None):
  """A replay table no learner samples (its rate limiter takes ~3 inserts,
  then holds every insert back), its server, and a writer to it."""
  table = reverb.Table(
      replay.REPLAY_TABLE, reverb.selectors.Uniform(), reverb.selectors.Fifo(),
      max_size=1000, signature=replay.transition_signature(INFO),
      rate_limiter=reverb.rate_limiters.SampleToInsertRatio(
          samples_per_insert=1.0, min_size_to_sample=1, error_buffer=2.0))
  server = reverb.Server([table])
  return table, server, replay.TransitionWriter(server.localhost_client(),
                                                INFO.frame_stack, stop=stop)


def test_a_rate_limited_writer_blocks_the_actor_without_reverb_warnings(capfd):
  # No learner samples, so the table takes ~3 inserts and then holds every
  # insert back: backpressure stops the actor with at most MAX_PENDING_ITEMS
  # pending, below the 50 at which Reverb logs "alarmingly high" (the limit
  # used to be 64, and a rate-limited Pong cluster logged the warning ten
  # times a second; test_e2e.py's Pong run checks its logs).
  table, server, writer = unsampled_table_and_writer()
  steps = []

  def act():
    try:
      writer.begin_episode(np.stack([frame(i) for i in range(3)]))
      for k in range(3, 200):
        writer.add(frame(k), action=0, reward=0.0, discount=1.0)
        steps.append(k)
    except (reverb.errors.ReverbError, RuntimeError):
      pass  # the server stopped under a blocked writer

  actor = threading.Thread(target=act, daemon=True)
  actor.start()
  actor.join(timeout=3)
  assert actor.is_alive()  # blocked by backpressure, not done
  pending = len(steps) - table.info.current_size
  assert 0 < pending <= replay.MAX_PENDING_ITEMS
  server.stop()
  actor.join(timeout=1)
  assert 'alarmingly high' not in capfd.readouterr().err


def held_back_writer(writer, episode_steps=200):
  """A thread that writes until the rate limiter holds it back; its fate."""
  fate = []

  def act():
    try:
      writer.begin_episode(np.stack([frame(i) for i in range(3)]))
      for k in range(3, episode_steps):
        writer.add(frame(k), action=0, reward=0.0, discount=1.0)
      writer.end_episode()
      fate.append('done')
    except replay.Stopped:
      fate.append('stopped')
    except (reverb.errors.ReverbError, RuntimeError) as e:
      fate.append(repr(e))

  actor = threading.Thread(target=act, daemon=True)
  actor.start()
  actor.join(timeout=2)
  assert actor.is_alive() and not fate  # held back by the rate limiter
  return actor, fate


@pytest.mark.parametrize('episode_steps', [
    200,  # held back in `add`
    8])  # ...and at the end of an episode (Reverb's end_episode flushes all)
def test_a_held_back_writer_stops_waiting_when_its_stop_is_set(episode_steps):
  # A stopping bundle's actors: the learners took their last sample, so the
  # limiter never lets the insert through. The stop event ends the wait
  # (the server still up, as at a stop: it checkpoints first).
  stop = threading.Event()
  _, server, writer = unsampled_table_and_writer(stop)
  actor, fate = held_back_writer(writer, episode_steps)
  stop.set()
  actor.join(timeout=2 * replay.STOP_POLL_MS / 1000 + 1)
  assert fate == ['stopped']
  server.stop()


def test_a_writer_closed_on_a_stop_leaves_refused_items_behind_at_once():
  # A stopping worker's writers, their items held back by a table no
  # learner samples any more: closed with a short flush timeout they drop
  # them (the default waits 5 s each, and kept workers past the launcher's
  # grace at the end of every run).
  table, server, writer = unsampled_table_and_writer()
  writer.begin_episode(np.stack([frame(i) for i in range(3)]))
  for k in range(3, 12):
    writer.add(frame(k), action=0, reward=0.0, discount=1.0)
  started = time.monotonic()
  writer.close(timeout_ms=100)
  assert time.monotonic() - started < 2.0
  assert table.info.current_size < 9  # some were refused, and left behind
  server.stop()


def test_the_pending_limit_stays_below_reverbs_warning():
  assert replay.MAX_PENDING_ITEMS + 1 < 50  # + the item being created
  assert config_lib.MAX_CHUNK_LENGTH < replay.MAX_PENDING_ITEMS


def test_a_writer_refuses_a_pending_limit_where_reverb_warns():
  with pytest.raises(ValueError, match='max_pending_items=64'):
    replay.TransitionWriter(None, INFO.frame_stack, max_pending_items=64)
