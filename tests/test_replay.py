"""The replay layout on a real Reverb server: frames once, states rebuilt exactly."""

import dataclasses

import numpy as np
import pytest
import reverb
import tensorflow as tf

from gorila_tf import config as config_lib
from gorila_tf import environments
from gorila_tf import replay

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


def sample_all(server, n):
  dataset = replay.make_dataset([f'localhost:{server.port}'], INFO, batch_size=n)
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
  np.testing.assert_allclose(batch['reward'].numpy(), 0.5 * k)


def test_first_state_of_an_episode_is_the_reset_stack(server):
  writer = replay.TransitionWriter(server.localhost_client(), INFO.frame_stack)
  write_episode(writer, first=10, steps=1)
  writer.close()
  batch = sample_all(server, 4)
  np.testing.assert_array_equal(batch['observation'].numpy()[0, :, 0], [10, 11, 12])
  np.testing.assert_array_equal(batch['next_observation'].numpy()[0, :, 0], [11, 12, 13])
  assert batch['discount'].numpy()[0] == 0.0  # the episode's terminal step


def test_global_dataset_samples_from_every_server():
  servers = [reverb.Server([replay.make_replay_table(_config(), INFO)])
             for _ in range(2)]
  for base, s in zip((0, 1000), servers):
    writer = replay.TransitionWriter(s.localhost_client(), INFO.frame_stack)
    write_episode(writer, first=base, steps=5)
    writer.close()
  dataset = replay.make_dataset([f'localhost:{s.port}' for s in servers], INFO,
                                batch_size=32)
  frames = next(iter(dataset))['observation'].numpy()[:, 0, 0]
  assert (frames < 1000).any() and (frames >= 1000).any()
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
