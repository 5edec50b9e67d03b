"""Q-network shapes, the pure apply function and sharded-gradient splitting."""

import numpy as np
import tensorflow as tf

from gorila_tf import config as config_lib
from gorila_tf.agent import environments
from gorila_tf.agent import networks

PONG = environments.EnvInfo('ALE/Pong-v5', (84, 84), np.dtype(np.uint8), 4, 6, 4)
CARTPOLE = environments.EnvInfo('CartPole-v1', (4,), np.dtype(np.float32), 1, 2, 1)


def test_nature_cnn_has_the_nature_dqn_parameter_count():
  net = networks.make_q_network(config_lib.NetworkConfig(kind='nature_cnn'), PONG)
  # convs 8224 + 32832 + 36928, fc 3136*512+512, head 512*6+6
  assert sum(int(np.prod(p.shape)) for p in net.params) == 1_687_206
  assert net(tf.zeros((2, 4, 84, 84), tf.uint8)).shape == (2, 6)


def test_nips_cnn_is_the_2013_dqn_and_computes_as_keras_layers_do():
  net = networks.make_q_network(config_lib.NetworkConfig(kind='nips_cnn'), PONG)
  # convs 4*8*8*16+16 + 16*4*4*32+32, fc 9*9*32*256+256, head 256*6+6
  assert sum(int(np.prod(p.shape)) for p in net.params) == 677_686
  # The same weights in Keras' own layers (Mnih et al. 2013's network).
  keras = tf.keras.Sequential([
      tf.keras.Input((84, 84, 4)),
      tf.keras.layers.Conv2D(16, 8, 4, activation='relu'),
      tf.keras.layers.Conv2D(32, 4, 2, activation='relu'),
      tf.keras.layers.Flatten(),
      tf.keras.layers.Dense(256, activation='relu'),
      tf.keras.layers.Dense(6)])
  keras.set_weights([p.numpy() for p in net.params])
  frames = np.random.default_rng(0).integers(0, 256, (3, 4, 84, 84), np.uint8)
  expected = keras(np.transpose(frames, (0, 2, 3, 1)).astype(np.float32) / 255.0)
  np.testing.assert_allclose(net(tf.constant(frames)), expected,
                             rtol=1e-4, atol=1e-5)


def test_mlp_maps_a_stacked_vector_observation_to_q_values():
  net = networks.make_q_network(
      config_lib.NetworkConfig(kind='mlp', mlp_layers=(8, 8)), CARTPOLE)
  assert net(tf.zeros((3, 1, 4))).shape == (3, 2)


def test_apply_is_a_pure_function_of_the_parameters_by_hand():
  spec = networks.make_spec(config_lib.NetworkConfig(kind='mlp', mlp_layers=(2,)),
                            environments.EnvInfo('x', (2,), np.dtype(np.float32),
                                                 1, 2, 1))
  # hidden = relu(x W1 + b1), q = hidden W2 + b2
  w1 = tf.constant([[1.0, -1.0], [2.0, 0.0]])
  b1 = tf.constant([0.0, 1.0])
  w2 = tf.constant([[1.0, 0.0], [0.0, 3.0]])
  b2 = tf.constant([0.5, 0.0])
  # x = [1, 1]: x W1 + b1 = [3, 0]; relu -> [3, 0]; q = [3.5, 0]
  q = networks.apply(spec, [w1, b1, w2, b2], tf.constant([[[1.0, 1.0]]]))
  np.testing.assert_allclose(q, [[3.5, 0.0]])


def test_dueling_head_is_value_plus_centred_advantage_by_hand():
  spec = networks.make_spec(
      config_lib.NetworkConfig(kind='mlp', mlp_layers=(), dueling=True),
      environments.EnvInfo('x', (1,), np.dtype(np.float32), 1, 2, 1))
  # No hidden layers: V = 2x + 1, A = [x, -x]; Q = V + A - mean(A) = V + A.
  params = [tf.constant([[2.0]]), tf.constant([1.0]),
            tf.constant([[1.0, -1.0]]), tf.constant([0.0, 0.0])]
  q = networks.apply(spec, params, tf.constant([[[3.0]]]))
  np.testing.assert_allclose(q, [[10.0, 4.0]])


def test_glorot_initial_values_are_seeded_and_biases_zero():
  spec = networks.make_spec(config_lib.NetworkConfig(kind='nature_cnn',
                                                     init='glorot'), PONG)
  a, b = networks.initial_values(spec, 1), networks.initial_values(spec, 1)
  assert all(np.array_equal(x, y) for x, y in zip(a, b))
  assert not np.array_equal(a[0], networks.initial_values(spec, 2)[0])
  assert all(not v.any() for (n, _), v in zip(networks.param_shapes(spec), a)
             if n.endswith('bias'))
  # conv_0: fan in 8*8*4 = 256, fan out 8*8*32 = 2048.
  assert 0.9 * np.sqrt(6 / 2304) < np.abs(a[0]).max() <= np.sqrt(6 / 2304)


def test_torch_initial_values_draw_weights_and_biases_within_one_over_root_fan_in():
  spec = networks.make_spec(config_lib.NetworkConfig(kind='nature_cnn',
                                                     init='torch'), PONG)
  values = networks.initial_values(spec, 1)
  # conv_0: 8*8*4 = 256 inputs per unit; dense_0: 3136; out: 512.
  for index, fan_in in [(0, 256), (1, 256), (6, 3136), (7, 3136), (8, 512)]:
    limit = 1 / np.sqrt(fan_in)
    assert 0.9 * limit < np.abs(values[index]).max() <= limit, index
  assert values[1].any()  # biases are drawn too


def test_split_like_follows_the_shards_along_axis_0():
  parts = [tf.Variable(tf.zeros((2, 3))), tf.Variable(tf.zeros((1, 3)))]
  whole = tf.reshape(tf.range(9.0), (3, 3))
  pieces = networks.split_like(whole, parts)
  np.testing.assert_array_equal(pieces[0], [[0, 1, 2], [3, 4, 5]])
  np.testing.assert_array_equal(pieces[1], [[6, 7, 8]])
  assert networks.split_like(whole, parts[:1])[0] is whole


def test_a_plain_network_has_one_part_per_parameter():
  net = networks.make_q_network(config_lib.NetworkConfig(kind='mlp'), CARTPOLE)
  assert len(net.parts()) == len(net.params)
  pairs = networks.split_gradients([tf.zeros_like(p) for p in net.params], net)
  assert [v for _, v in pairs] == net.parts()


def test_a_bfloat16_read_is_the_float32_parameters_rounded_to_bfloat16():
  config = config_lib.resolve('cartpole')
  net = networks.make_q_network(config.network, environments.env_info(config.env))
  exact = networks.read_over_the_wire(net, tf.float32)
  halved = networks.read_over_the_wire(net, tf.bfloat16)
  for p, e, h in zip(net.params, exact, halved):
    assert e.dtype == h.dtype == tf.float32
    np.testing.assert_array_equal(e.numpy(), p.numpy())
    np.testing.assert_array_equal(
        h.numpy(), tf.cast(tf.cast(p, tf.bfloat16), tf.float32).numpy())
    assert np.max(np.abs(h.numpy() - p.numpy())) <= np.max(np.abs(p.numpy())) / 128


def test_bfloat16_compute_keeps_float32_parameters_q_values_and_gradients():
  # The same parameters computed in bfloat16: Q within bfloat16's rounding
  # (8 bits of mantissa, ~0.4 % per op) of float32's, and the gradients
  # come back float32 through the casts, for the float32 optimizer.
  config = config_lib.NetworkConfig(kind='nature_cnn')
  spec32 = networks.make_spec(config, PONG)
  spec16 = networks.make_spec(config_lib.NetworkConfig(
      kind='nature_cnn', compute_dtype='bfloat16'), PONG)
  params = [tf.constant(v) for v in networks.initial_values(spec32, 0)]
  frames = tf.constant(np.random.default_rng(0).integers(
      0, 256, (8, 4, 84, 84)), tf.uint8)
  q32 = networks.apply(spec32, params, frames)
  with tf.GradientTape() as tape:
    tape.watch(params)
    q16 = networks.apply(spec16, params, frames)
    loss = tf.reduce_sum(q16)
  gradients = tape.gradient(loss, params)
  assert q16.dtype == tf.float32
  assert all(g.dtype == tf.float32 for g in gradients)
  spread = float(tf.reduce_max(q32) - tf.reduce_min(q32))
  np.testing.assert_allclose(q16, q32, atol=0.05 * spread)
  assert not np.allclose(q16, q32, rtol=0, atol=1e-7)  # it did compute in bf16


def test_auto_compute_dtype_is_bfloat16_only_where_the_cpu_has_its_instructions(
    tmp_path):
  # Without the instructions oneDNN emulates bfloat16, slower than float32.
  with_bf16 = tmp_path / 'zen4'
  with_bf16.write_text('processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f '
                       'avx512_bf16 avx512_vnni\n')
  without = tmp_path / 'avx2'
  without.write_text('processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n')
  assert networks.resolve_compute_dtype('auto', str(with_bf16)) == 'bfloat16'
  assert networks.resolve_compute_dtype('auto', str(without)) == 'float32'
  assert networks.resolve_compute_dtype('auto', str(tmp_path / 'none')) == 'float32'
  for name in ('float32', 'bfloat16'):  # an explicit choice is kept
    assert networks.resolve_compute_dtype(name, str(without)) == name
  # make_spec resolves it, on this machine's CPU.
  spec = networks.make_spec(config_lib.NetworkConfig(
      kind='nature_cnn', compute_dtype='auto'), PONG)
  assert spec.compute_dtype == ('bfloat16' if networks.cpu_has_bf16()
                                else 'float32')
