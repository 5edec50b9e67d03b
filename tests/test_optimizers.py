"""The ps update rules against Keras' reference implementations and by hand."""

import typing

import numpy as np
import pytest
import tensorflow as tf

from gorila_tf import config as config_lib
from gorila_tf import optimizers


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
  with pytest.raises(config_lib.ConfigError, match="learner.optimizer='sgd'"):
    optimizers.Optimizer(learner(optimizer='sgd'), [tf.Variable(1.0)])
