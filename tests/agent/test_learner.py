"""The learner's records: step outcomes by name, state built by keyword."""

import dataclasses

import pytest
import tensorflow as tf

from gorila_tf.agent import learner as learner_lib


def test_a_rounds_outcome_is_the_sum_of_its_steps_by_name():
  steps = [learner_lib.StepOutcome.counted(applied=True, stale=False,
                                           outlier=False, nonfinite=False),
           learner_lib.StepOutcome.counted(applied=False, stale=True,
                                           outlier=False, nonfinite=False),
           learner_lib.StepOutcome.counted(applied=True, stale=False,
                                           outlier=False, nonfinite=False)]
  total = learner_lib.StepOutcome.zeros()
  for outcome in steps:
    total = total.plus(outcome)
  assert {k: int(v) for k, v in total._asdict().items()} == {
      'applied': 2, 'stale': 1, 'outlier': 0, 'nonfinite': 0}
  assert total.applied.dtype == tf.int64


def test_learner_state_is_built_by_keyword_and_checkpoints_every_field():
  state = learner_lib.LearnerState.create(num_workers=3)
  assert state.loss_stats.shape == (3, 3)
  assert state.updates_by_worker.shape == (3,)
  assert set(state.checkpoint_items()) == {
      'applied', 'discarded_stale', 'discarded_outlier', 'loss_stats',
      'updates_by_worker', 'nonfinite'}
  with pytest.raises(TypeError):
    learner_lib.LearnerState(*state.checkpoint_items().values())  # pylint: disable=missing-kwoa


def test_the_xla_gradient_is_the_same_maths_as_the_plain_one():
  import numpy as np  # pylint: disable=g-import-not-at-top
  from gorila_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  from gorila_tf.agent import environments, networks, optimizers  # pylint: disable=g-import-not-at-top
  config = config_lib.resolve('cartpole')
  info = environments.env_info(config.env)
  q = networks.make_q_network(config.network, info, seed=1)
  target = networks.make_q_network(config.network, info, seed=2)
  rng = np.random.default_rng(0)
  batch = {'observation': tf.constant(rng.normal(size=(16, 4)), tf.float32),
           'next_observation': tf.constant(rng.normal(size=(16, 4)), tf.float32),
           'action': tf.constant(rng.integers(2, size=16), tf.int32),
           'reward': tf.constant(rng.normal(size=(16, 1)), tf.float32),
           'discount': tf.constant(np.full((16, 1), 0.99), tf.float32)}
  results = []
  for xla in (False, True):
    learner_config = dataclasses.replace(config.learner, xla=xla)
    learner = learner_lib.Learner(
        q_net=q, target_net=target, state=None, learner=learner_config,
        optimizer=optimizers.Optimizer(learner_config, q.parts()))
    gradient = tf.function(learner.gradient, jit_compile=xla)
    results.append(gradient(batch, q.read(), target.read()))
  (loss, grads, _), (xla_loss, xla_grads, _) = results
  np.testing.assert_allclose(xla_loss.numpy(), loss.numpy(), rtol=1e-5)
  for g, x in zip(grads, xla_grads):
    np.testing.assert_allclose(x.numpy(), g.numpy(), rtol=1e-4, atol=1e-6)
