"""Q-network shapes and re-joining sharded variables."""

import numpy as np
import pytest
import tensorflow as tf

from gorila_tf import config as config_lib
from gorila_tf import environments
from gorila_tf import networks

PONG = environments.EnvInfo('ALE/Pong-v5', (84, 84), np.dtype(np.uint8), 4, 6, 4)
CARTPOLE = environments.EnvInfo('CartPole-v1', (4,), np.dtype(np.float32), 1, 2, 1)


def test_nature_cnn_has_the_nature_dqn_parameter_count():
  net = networks.make_q_network(config_lib.NetworkConfig(kind='nature_cnn'), PONG)
  # convs 8224 + 32832 + 36928, fc 3136*512+512, head 512*6+6
  assert sum(int(np.prod(v.shape)) for v in net.variables) == 1_687_206
  q, _ = net(tf.zeros((2, 4, 84, 84), tf.uint8))
  assert q.shape == (2, 6)


def test_mlp_maps_a_stacked_vector_observation_to_q_values():
  net = networks.make_q_network(
      config_lib.NetworkConfig(kind='mlp', mlp_layers=(8, 8)), CARTPOLE)
  q, _ = net(tf.zeros((3, 1, 4)))
  assert q.shape == (3, 2)


def test_merge_shards_concatenates_consecutive_parts_along_axis_0():
  parts = [tf.fill((2, 3), 1.0), tf.fill((1, 3), 2.0), tf.constant([7.0]),
           tf.constant(5.0)]
  merged = networks.merge_shards(parts, [tf.TensorShape((3, 3)),
                                         tf.TensorShape((1,)),
                                         tf.TensorShape(())])
  np.testing.assert_array_equal(merged[0], [[1, 1, 1], [1, 1, 1], [2, 2, 2]])
  np.testing.assert_array_equal(merged[1], [7.0])
  assert float(merged[2]) == 5.0


@pytest.mark.parametrize('parts, shapes, message', [
    ([tf.zeros((2, 3))], [(3, 3)], 'ran out of parts'),
    ([tf.zeros((2, 3)), tf.zeros((2, 3))], [(3, 3)], 'add up to 4 rows'),
    ([tf.zeros((2, 4))], [(2, 3)], 'does not fit'),
    ([tf.zeros((2, 3)), tf.zeros((1,))], [(2, 3)], 'parts left over'),
])
def test_merge_shards_refuses_parts_that_do_not_fit(parts, shapes, message):
  with pytest.raises(ValueError, match=message):
    networks.merge_shards(parts, [tf.TensorShape(s) for s in shapes])
