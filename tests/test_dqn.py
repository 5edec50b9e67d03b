"""The DQN maths against numbers worked out by hand."""

import numpy as np
import pytest
import tensorflow as tf

from gorila_tf import dqn


@pytest.mark.parametrize('frame, expected', [
    (0, 1.0),  # start
    (500, 0.55),  # halfway: 1 + 0.5 * (0.1 - 1)
    (1000, 0.1),  # end of decay
    (5000, 0.1),  # stays at the end value
    (-10, 1.0),  # clamped below
])
def test_linear_epsilon_decays_linearly_then_stays(frame, expected):
  assert dqn.linear_epsilon(frame, 1.0, 0.1, 1000) == pytest.approx(expected)


def test_linear_epsilon_with_no_decay_is_the_end_value():
  assert dqn.linear_epsilon(0, 1.0, 0.05, 0) == 0.05


def test_clip_rewards_clips_to_plus_minus_clip_and_zero_means_off():
  r = tf.constant([-5.0, -0.5, 0.0, 2.0])
  np.testing.assert_allclose(dqn.clip_rewards(r, 1.0), [-1.0, -0.5, 0.0, 1.0])
  np.testing.assert_allclose(dqn.clip_rewards(r, 0.0), r)


def test_q_learning_targets_by_hand():
  # Transition 0: r=1, continues: 1 + 0.9 * max(2, 3) = 3.7
  # Transition 1: r=-1, terminal (discount 0): -1
  # Transition 2: r=0, continues: 0 + 0.9 * max(-1, -4) = -0.9
  rewards = tf.constant([1.0, -1.0, 0.0])
  discounts = tf.constant([1.0, 0.0, 1.0])
  next_q = tf.constant([[2.0, 3.0], [10.0, 20.0], [-1.0, -4.0]])
  targets = dqn.q_learning_targets(rewards, discounts, next_q, 0.9)
  np.testing.assert_allclose(targets, [3.7, -1.0, -0.9], rtol=1e-6)


def test_q_learning_targets_carry_no_gradient():
  next_q = tf.Variable([[1.0, 2.0]])
  with tf.GradientTape() as tape:
    t = dqn.q_learning_targets(tf.constant([0.0]), tf.constant([1.0]), next_q, 0.9)
  assert tape.gradient(t, next_q) is None


def test_huber_is_quadratic_inside_delta_and_linear_outside():
  # |x| <= 1: x^2 / 2 ; |x| > 1: |x| - 1/2 (delta = 1)
  x = tf.constant([0.0, 0.5, -1.0, 3.0, -2.0])
  np.testing.assert_allclose(dqn.huber(x, 1.0), [0.0, 0.125, 0.5, 2.5, 1.5])
  # delta = 2: 3 -> 0.5 * 4 + 2 * (3 - 2) = 4
  np.testing.assert_allclose(dqn.huber(tf.constant([3.0]), 2.0), [4.0])


def test_dqn_loss_uses_the_taken_actions_by_hand():
  q = tf.constant([[1.0, 2.0], [0.0, -1.0]])
  actions = tf.constant([1, 0])
  targets = tf.constant([4.0, 0.5])
  # Errors: 4 - 2 = 2 (huber 1.5), 0.5 - 0 = 0.5 (huber 0.125); mean 0.8125
  loss, td = dqn.dqn_loss(q, actions, targets, 1.0)
  assert float(loss) == pytest.approx(0.8125)
  np.testing.assert_allclose(td, [2.0, 0.5])


def test_dqn_loss_gradient_is_clipped_error():
  q = tf.Variable([[0.0, 0.0]])
  with tf.GradientTape() as tape:
    loss, _ = dqn.dqn_loss(q, tf.constant([0]), tf.constant([10.0]), 1.0)
  # d/dq huber(10 - q) = -1 (clipped), only for the taken action.
  np.testing.assert_allclose(tape.gradient(loss, q), [[-1.0, 0.0]])
