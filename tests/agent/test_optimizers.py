"""The ps update rules against Keras' reference implementations and by hand."""

import dataclasses
import os
import tempfile
import typing

import numpy as np
import pytest
import tensorflow as tf

from gorila_tf import config as config_lib
from gorila_tf import errors
from gorila_tf.agent import dqn
from gorila_tf.agent import optimizers


def learner(**kwargs):
  return config_lib.LearnerConfig(**kwargs)


def test_centered_rmsprop_one_step_by_hand():
  # g = 2, rho 0.5: ms = 0.5*4 = 2, mg = 0.5*2 = 1; step = 0.1*2/sqrt(2-1+0.01)
  var = tf.Variable([1.0])
  opt = optimizers.Optimizer(learner(optimizer='rmsprop', learning_rate=0.1,
                                     rmsprop_rho=0.5, optimizer_epsilon=0.01), [var])
  opt.apply([(tf.constant([2.0]), var)])
  assert float(var[0]) == pytest.approx(1.0 - 0.2 / np.sqrt(1.01))
  assert int(opt.iterations) == 1
  assert float(opt.slots['ms'][0][0]) == pytest.approx(2.0)
  assert float(opt.slots['mg'][0][0]) == pytest.approx(1.0)


def test_every_rule_has_slots_named_after_its_symbols():
  assert set(optimizers.SLOT_NAMES) == set(typing.get_args(config_lib.OptimizerName))
  variables = [tf.Variable([1.0, 2.0]), tf.Variable(3.0)]
  for name, slot_names in (('rmsprop', ('ms', 'mg')), ('adam', ('m', 'v'))):
    opt = optimizers.Optimizer(learner(optimizer=name), variables)
    assert tuple(opt.slots) == slot_names
    for slots in opt.slots.values():
      assert [s.shape for s in slots] == [v.shape for v in variables]


@pytest.mark.parametrize('name, keras_optimizer', [
    ('rmsprop', lambda: tf.keras.optimizers.RMSprop(
        learning_rate=0.01, rho=0.95, epsilon=0.01, centered=True)),
    ('adam', lambda: tf.keras.optimizers.Adam(learning_rate=0.01, epsilon=1e-7)),
])
def test_matches_keras_over_several_steps(name, keras_optimizer):
  rng = np.random.default_rng(0)
  start = rng.normal(size=(3, 2)).astype(np.float32)
  ours, theirs = tf.Variable(start), tf.Variable(start)
  opt = optimizers.Optimizer(
      learner(optimizer=name, learning_rate=0.01,
              optimizer_epsilon=0.01 if name == 'rmsprop' else 1e-7), [ours])
  reference = keras_optimizer()
  for _ in range(5):
    g = tf.constant(rng.normal(size=(3, 2)).astype(np.float32))
    opt.apply([(g, ours)])
    reference.apply_gradients([(g, theirs)])
  np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)


def test_unknown_optimizer_is_refused():
  with pytest.raises(errors.ConfigError, match="learner.optimizer='sgd'"):
    optimizers.Optimizer(learner(optimizer='sgd'), [tf.Variable(1.0)])


# Epsilon and the batch (optimizers' module docstring): Nature DQN's code
# (deepmind/dqn dqn/NeuralQLearner.lua) steps on the SUM over the batch of the
# per-transition gradients, with 0.01 inside the square root; this package's
# loss is the MEAN, and 'summed_loss' units scale epsilon to it.


def nature_rmsprop(per_sample_batches, lr, rho, eps=0.01, start=1.0):
  """Nature's centered RMSProp on the summed gradient, in float64: v after
  each batch of per-sample gradients ([B, ...] arrays)."""
  v = np.float64(start)
  ms = mg = 0.0
  values = []
  for per_sample in per_sample_batches:
    g = np.sum(np.asarray(per_sample, np.float64), axis=0)
    ms = rho * ms + (1 - rho) * g * g
    mg = rho * mg + (1 - rho) * g
    v = v - lr * g / np.sqrt(ms - mg * mg + eps)
    values.append(v)
  return values


def test_summed_loss_epsilon_gives_natures_step_by_hand():
  # B = 4 per-sample gradients per step, lr 0.1, rho 0.5, Nature's eps 0.01.
  # Summed (Nature):                     Mean (here, eps 0.01 / 4^2 = 0.000625):
  #  1: [.5 .5 .5 .5]: G = 2              g = 0.5
  #     ms = .5*4 = 2, mg = .5*2 = 1        ms = .125, mg = .25
  #     var = 2 - 1 = 1                     var = .0625 = 1/16
  #     step = .1*2/sqrt(1.01)              .1*.5/sqrt((1 + .01)/16) = the same
  #  2: [1.5 .5 1 1]: G = 4               g = 1
  #     ms = 1 + 8 = 9, mg = .5 + 2 = 2.5   ms = 9/16, mg = 2.5/4
  #     var = 9 - 6.25 = 2.75               var = 2.75/16
  #     step = .1*4/sqrt(2.76)              .1*1/sqrt(2.76/16) = the same
  #  3: [-1 -1 0 0]: G = -2               g = -0.5
  #     ms = 4.5 + 2 = 6.5, mg = 1.25 - 1 = .25,  var = 6.5 - .0625 = 6.4375
  #     step = .1*(-2)/sqrt(6.4475)        the same
  batches = [[0.5, 0.5, 0.5, 0.5], [1.5, 0.5, 1.0, 1.0], [-1.0, -1.0, 0.0, 0.0]]
  by_hand = [1.0 - 0.2 / np.sqrt(1.01),
             1.0 - 0.2 / np.sqrt(1.01) - 0.4 / np.sqrt(2.76),
             1.0 - 0.2 / np.sqrt(1.01) - 0.4 / np.sqrt(2.76) + 0.2 / np.sqrt(6.4475)]
  np.testing.assert_allclose(nature_rmsprop(batches, lr=0.1, rho=0.5), by_hand)
  config = learner(optimizer='rmsprop', learning_rate=0.1, rmsprop_rho=0.5,
                   optimizer_epsilon=0.01, optimizer_epsilon_units='summed_loss',
                   batch_size=4)
  var = tf.Variable([1.0])
  opt = optimizers.Optimizer(config, [var])
  assert opt.epsilon == 0.01 / 4**2 == 0.000625
  for per_sample, expected in zip(batches, by_hand):
    opt.apply([(tf.constant([np.mean(per_sample)], tf.float32), var)])  # mean loss
    assert float(var[0]) == pytest.approx(expected, rel=1e-6)
  # The slots hold the mean gradient's moments: 1/B and 1/B^2 of Nature's.
  assert float(opt.slots['mg'][0][0]) == pytest.approx(0.25 / 4)
  assert float(opt.slots['ms'][0][0]) == pytest.approx(6.5 / 16)


def linear_q_batches(batch_size, steps, seed=0):
  """Batches for a linear Q-function q(s) = s W: states, actions, targets
  (TD errors of all sizes, some beyond the Huber clip of 1)."""
  rng = np.random.default_rng(seed)
  for _ in range(steps):
    yield (rng.normal(size=(batch_size, 5)).astype(np.float32),
           rng.integers(0, 3, size=batch_size).astype(np.int32),
           rng.normal(scale=2.0, size=batch_size).astype(np.float32))


@pytest.mark.parametrize('overrides', [[], ['learner.batch_size=64']])
def test_atari_preset_takes_natures_step_on_dqn_batches(overrides):
  # The preset as a user gets it (also with another batch size): three
  # consecutive updates from this package's mean Huber loss equal Nature's
  # summed ones, whose per-transition gradient is the TD error clipped to
  # [-1, 1] times dQ(s, a)/dW = s in column a (NeuralQLearner.lua getQUpdate).
  c = config_lib.resolve('atari', overrides).learner
  assert c.optimizer_epsilon == 0.01 and c.optimizer_epsilon_units == 'summed_loss'
  # Small weights, so that float32 resolves steps of 2.5e-4 well.
  start = np.random.default_rng(1).normal(scale=0.01, size=(5, 3)).astype(np.float32)
  w = tf.Variable(start)
  opt = optimizers.Optimizer(c, [w])
  assert opt.epsilon == pytest.approx(0.01 / c.batch_size**2)
  reference = start.astype(np.float64)
  ms = np.zeros_like(reference)
  mg = np.zeros_like(reference)
  for states, actions, targets in linear_q_batches(c.batch_size, steps=3):
    with tf.GradientTape() as tape:
      loss, _ = dqn.dqn_loss(tf.constant(states) @ w, tf.constant(actions),
                             tf.constant(targets), c.huber_delta)
    opt.apply([(tape.gradient(loss, w), w)])
    # Nature, on the sum over the batch, eps 0.01:
    td = targets - np.take_along_axis(states @ reference, actions[:, None], 1)[:, 0]
    clipped = np.clip(td, -c.huber_delta, c.huber_delta)
    g = -np.einsum('b,bf,ba->fa', clipped, states, np.eye(3)[actions])
    ms = c.rmsprop_rho * ms + (1 - c.rmsprop_rho) * g * g
    mg = c.rmsprop_rho * mg + (1 - c.rmsprop_rho) * g
    reference = reference - c.learning_rate * g / np.sqrt(ms - mg * mg + 0.01)
    np.testing.assert_allclose(w.numpy() - start, reference - start, rtol=1e-4,
                               atol=1e-9)


def test_old_setting_mean_loss_with_nature_epsilon_shrinks_steps_up_to_batch():
  # The defect this fixes: the mean loss with Nature's 0.01 as is. Atari
  # preset, B = 32 equal per-sample gradients (no variance), first step:
  #   Nature: G = 32 x 1e-3 = 0.032, var = rho (1 - rho) G^2 = 4.864e-5
  #     step = lr 0.032 / sqrt(4.864e-5 + 0.01) = lr 0.31923
  #   old: g = 1e-3, var = 0.0475e-6,  step = lr 1e-3 / sqrt(0.01000005)
  #     = lr 0.0099999   -> 31.9 times smaller (up to B = 32)
  # With large gradients (variance >> 0.01) the two agree: per-sample 10,
  #   Nature lr 320 / sqrt(4864.01), old lr 10 / sqrt(4.76): ratio 1.001.
  c = config_lib.resolve('atari').learner
  old = dataclasses.replace(c, optimizer_epsilon_units='mean_loss')

  def first_step(config, per_sample):
    var = tf.Variable([0.0])
    optimizers.Optimizer(config, [var]).apply(
        [(tf.constant([per_sample], tf.float32), var)])  # all B equal: the mean
    return -float(var[0])

  nature = nature_rmsprop([[1e-3] * 32], lr=c.learning_rate, rho=0.95, start=0.0)
  assert -nature[0] == pytest.approx(c.learning_rate * 0.31923, rel=1e-4)
  assert first_step(c, 1e-3) == pytest.approx(-nature[0], rel=1e-5)
  assert first_step(c, 1e-3) / first_step(old, 1e-3) == pytest.approx(31.92, rel=1e-3)
  assert first_step(c, 10.0) / first_step(old, 10.0) == pytest.approx(1.001, abs=1e-3)


def test_summed_loss_adam_divides_epsilon_by_the_batch_size_once():
  # Adam's step m_hat / (sqrt(v_hat) + eps) is scale-free but for eps, which
  # is in gradient units: with g/B, eps/B gives the summed-loss step.
  config = learner(optimizer='adam', learning_rate=0.01, optimizer_epsilon=0.5,
                   optimizer_epsilon_units='summed_loss', batch_size=8)
  assert optimizers.mean_loss_epsilon(config) == 0.5 / 8
  summed_config = dataclasses.replace(config, optimizer_epsilon_units='mean_loss')
  rng = np.random.default_rng(2)
  ours, theirs = tf.Variable(np.zeros(4, np.float32)), tf.Variable(np.zeros(4, np.float32))
  opt = optimizers.Optimizer(config, [ours])
  summed = optimizers.Optimizer(summed_config, [theirs])  # eps 0.5 on the sum
  for _ in range(3):
    per_sample = rng.normal(scale=0.1, size=(8, 4)).astype(np.float32)
    opt.apply([(tf.constant(per_sample.mean(axis=0)), ours)])
    summed.apply([(tf.constant(per_sample.sum(axis=0)), theirs)])
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-8)


def test_epsilon_units_of_every_preset():
  # atari, pong, breakout: Nature's 0.01 on the summed loss, for any batch size;
  # the others' tuned epsilons apply to the mean loss as before.
  for name in ('atari', 'pong', 'breakout'):
    assert optimizers.mean_loss_epsilon(config_lib.resolve(name).learner) == 0.01 / 32**2
  bigger = config_lib.resolve('pong', ['learner.batch_size=64']).learner
  assert optimizers.mean_loss_epsilon(bigger) == 0.01 / 64**2
  for name, epsilon in (('pong_fast', 1e-5), ('cartpole', 1e-7)):
    c = config_lib.resolve(name).learner
    assert c.optimizer_epsilon_units == 'mean_loss'
    assert optimizers.mean_loss_epsilon(c) == epsilon
  with pytest.raises(errors.ConfigError,
                     match="learner.optimizer_epsilon_units='per_sample'"):
    optimizers.mean_loss_epsilon(learner(optimizer_epsilon_units='per_sample'))


@pytest.mark.parametrize('name', ['rmsprop', 'adam'])
def test_fused_kernels_take_the_written_out_rules_steps(name):
  rng = np.random.default_rng(3)
  start = rng.normal(size=(64, 8)).astype(np.float32)
  results = {}
  for fused in (True, False):
    var = tf.Variable(start)
    opt = optimizers.Optimizer(learner(optimizer=name, learning_rate=0.01,
                                       fused_update=fused), [var])
    for step in range(4):
      gradient = np.random.default_rng(step).normal(size=start.shape)
      opt.apply([(tf.constant(gradient, tf.float32), var)])
    results[fused] = (var.numpy(), [s[0].numpy() for s in opt.slots.values()])
  np.testing.assert_allclose(results[True][0], results[False][0], rtol=2e-5, atol=1e-6)
  for fused_slot, written_slot in zip(results[True][1], results[False][1]):
    np.testing.assert_allclose(fused_slot, written_slot, rtol=2e-5, atol=1e-7)


def test_the_fused_rmsprop_buffer_is_not_state_and_not_checkpointed():
  var = tf.Variable([1.0, 2.0])
  opt = optimizers.Optimizer(learner(optimizer='rmsprop', fused_update=True), [var])
  names = [v.name for v in opt.variables]
  assert len(names) == 1 + 2  # iterations, ms, mg: no momentum buffer
  keys = [k for k, _ in tf.train.list_variables(
      tf.train.Checkpoint(optimizer=opt).write(
          os.path.join(tempfile.mkdtemp(), 'c')))]
  assert not any('scratch' in k or 'buffers' in k for k in keys), keys


def test_a_bfloat16_gradient_is_applied_in_float32():
  var = tf.Variable([1.0])
  opt = optimizers.Optimizer(learner(optimizer='rmsprop', learning_rate=0.1,
                                     rmsprop_rho=0.5, optimizer_epsilon=0.01), [var])
  opt.apply([(tf.constant([2.0], tf.bfloat16), var)])  # 2 is exact in bfloat16
  assert var.dtype == tf.float32
  assert float(var[0]) == pytest.approx(1.0 - 0.2 / np.sqrt(1.01))


def moves_under_a_constant_gradient(opt, var, updates):
  """How far each of `updates` updates of gradient 3 moves `var` down."""
  before, out = float(var[0]), []
  for _ in range(updates):
    opt.apply([(tf.constant([3.0]), var)])
    out.append(before - float(var[0]))
    before = float(var[0])
  return np.array(out)


@pytest.mark.parametrize('name', ['adam', 'rmsprop'])
@pytest.mark.parametrize('fused', [True, False])
def test_a_warmup_raises_the_step_size_linearly_to_the_learning_rate(name, fused):
  # A constant gradient: Adam's bias-corrected m / sqrt(v) is exactly 1, so
  # update k moves the weight by lr * min(k / warmup, 1) (epsilon ~0 here);
  # the same rule without a warm-up moves it by lr from the first update.
  def moves(warmup):
    var = tf.Variable([0.0])
    opt = optimizers.Optimizer(learner(
        optimizer=name, learning_rate=0.1, optimizer_epsilon=1e-12,
        learning_rate_warmup=warmup, fused_update=fused), [var])
    return moves_under_a_constant_gradient(opt, var, 6), opt

  plain, _ = moves(0)
  warm, opt = moves(4)
  ramp = np.array([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
  np.testing.assert_allclose(warm, plain * ramp, rtol=1e-5)
  if name == 'adam':
    np.testing.assert_allclose(plain, 0.1, rtol=1e-5)
  if name == 'adam' or fused:  # (written-out RMSProp's figure is mg's step)
    # The health probe's step norm is the last step, warm-up included.
    np.testing.assert_allclose(float(opt.last_step_sq_norms()[0]),
                               warm[-1] ** 2, rtol=1e-4)


@pytest.mark.parametrize('name', ['adam', 'rmsprop'])
def test_the_step_size_falls_linearly_to_its_end_after_the_warmup(name):
  # Warm-up over 2 updates, then from 0.1 down to 0.02 at update 6 (0.1 at
  # update 2, 0.08 at 3, ..., 0.02 at 6), then 0.02: with Adam's constant
  # gradient each update moves the weight by exactly its step size.
  opt = optimizers.Optimizer(learner(
      optimizer=name, learning_rate=0.1, optimizer_epsilon=1e-12,
      learning_rate_warmup=2, learning_rate_end=0.02,
      learning_rate_end_update=6), [tf.Variable([0.0])])
  rates = [float(opt.learning_rate(tf.constant(k, tf.int64))) for k in range(1, 9)]
  np.testing.assert_allclose(
      rates, [0.05, 0.1, 0.08, 0.06, 0.04, 0.02, 0.02, 0.02], rtol=1e-5)
  if name == 'adam':
    var = tf.Variable([0.0])
    adam = optimizers.Optimizer(learner(
        optimizer='adam', learning_rate=0.1, optimizer_epsilon=1e-12,
        learning_rate_end=0.02, learning_rate_end_update=4), [var])
    np.testing.assert_allclose(moves_under_a_constant_gradient(adam, var, 5),
                               [0.08, 0.06, 0.04, 0.02, 0.02], rtol=1e-4)


def test_a_fall_that_ends_inside_the_warmup_is_refused_naming_both():
  with pytest.raises(config_lib.ConfigError, match=(
      r'learner.learning_rate_end_update=100 is out of range; allowed: > '
      r'learner.learning_rate_warmup=1000')):
    config_lib.resolve('pong_fast', [
        'learner.learning_rate_warmup=1000', 'learner.learning_rate_end=1e-5',
        'learner.learning_rate_end_update=100'])
