"""The DQN maths against numbers worked out by hand."""

import numpy as np
import pytest
import tensorflow as tf

from gorila_tf.agent import dqn


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


def test_one_step_returns_are_the_reward_and_gamma_times_discount():
  returns, bootstrap = dqn.n_step_returns(tf.constant([[1.0], [-1.0]]),
                                          tf.constant([[1.0], [0.0]]), 0.9)
  np.testing.assert_allclose(returns, [1.0, -1.0])
  np.testing.assert_allclose(bootstrap, [0.9, 0.0])


def test_n_step_returns_stop_at_a_terminal_step_by_hand():
  # Row 0: rewards 1, 2, 3 all continuing: 1 + 0.5*2 + 0.25*3 = 2.75,
  #        bootstrap 0.5^3 = 0.125.
  # Row 1: rewards 1, 2, 3 with the second step terminal (d = 0 there):
  #        1 + 0.5*2 = 2 (the third reward is after the end), bootstrap 0.
  # Row 2: terminal at once: 4, bootstrap 0.
  rewards = tf.constant([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])
  discounts = tf.constant([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
  returns, bootstrap = dqn.n_step_returns(rewards, discounts, 0.5)
  np.testing.assert_allclose(returns, [2.75, 2.0, 4.0])
  np.testing.assert_allclose(bootstrap, [0.125, 0.0, 0.0])


def test_q_learning_targets_by_hand():
  # Transition 0: G=1, bootstrap 0.9: 1 + 0.9 * max(2, 3) = 3.7
  # Transition 1: G=-1, terminal (bootstrap 0): -1
  # Transition 2: G=0, bootstrap 0.9: 0 + 0.9 * max(-1, -4) = -0.9
  returns = tf.constant([1.0, -1.0, 0.0])
  bootstrap = tf.constant([0.9, 0.0, 0.9])
  next_q = tf.constant([[2.0, 3.0], [10.0, 20.0], [-1.0, -4.0]])
  targets = dqn.q_learning_targets(returns, bootstrap, next_q)
  np.testing.assert_allclose(targets, [3.7, -1.0, -0.9], rtol=1e-6)


def test_double_dqn_targets_pick_the_action_with_the_online_net():
  # Online prefers action 0; the target net values it at 2 (not its max, 3).
  targets = dqn.q_learning_targets(tf.constant([1.0]), tf.constant([0.5]),
                                   next_q_target=tf.constant([[2.0, 3.0]]),
                                   next_q_online=tf.constant([[5.0, 1.0]]))
  np.testing.assert_allclose(targets, [1.0 + 0.5 * 2.0])


def test_q_learning_targets_carry_no_gradient():
  next_q = tf.Variable([[1.0, 2.0]])
  with tf.GradientTape() as tape:
    t = dqn.q_learning_targets(tf.constant([0.0]), tf.constant([0.9]), next_q)
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


@pytest.mark.parametrize('now, replica, threshold, stale', [
    (110, 100, 10, False),  # exactly at the threshold: kept
    (111, 100, 10, True),  # one update older: discarded
    (5000, 0, 0, False),  # 0 turns the test off
])
def test_stale_gradient_is_dropped_beyond_the_threshold(now, replica, threshold,
                                                        stale):
  assert bool(dqn.is_stale(tf.constant(now), tf.constant(replica), threshold)) == stale


def test_loss_stats_are_a_plain_average_at_first_by_hand():
  mean = var = count = tf.constant(0.0)
  for x in (1.0, 3.0):
    mean, var, count = dqn.update_loss_stats(mean, var, count, tf.constant(x), 0.99)
  # Weights 1/1 then 1/2: mean 2; variance (1/2)(0 + 2*1) = 1 (population).
  assert float(mean) == pytest.approx(2.0)
  assert float(var) == pytest.approx(1.0)
  assert float(count) == 2.0


def test_loss_stats_forget_with_the_decay_once_warm():
  mean, var, count = tf.constant(2.0), tf.constant(1.0), tf.constant(1000.0)
  mean, var, _ = dqn.update_loss_stats(mean, var, count, tf.constant(12.0), 0.9)
  # alpha = 0.1: mean 2 + 0.1*10 = 3; var 0.9 * (1 + 10*1) = 9.9
  assert float(mean) == pytest.approx(3.0)
  assert float(var) == pytest.approx(9.9)


@pytest.mark.parametrize('x, count, k, outlier', [
    # mean 1, variance 0.25 (std 0.5): threshold 1 + 3 * 0.5 = 2.5
    (2.4, 200, 3.0, False),
    (2.6, 200, 3.0, True),
    (9.0, 50, 3.0, False),  # still warming up (warmup 100)
    (9.0, 200, 0.0, False),  # k = 0 turns the test off
])
def test_outlier_gradient_is_dropped_above_mean_plus_k_std(x, count, k, outlier):
  result = dqn.is_loss_outlier(tf.constant(x), tf.constant(1.0), tf.constant(0.25),
                               tf.constant(float(count)), k, warmup=100)
  assert bool(result) == outlier


def test_per_actor_epsilons_follow_apex_by_hand():
  # N = 3 actors, eps 0.4, alpha 7: exponents 1, 4.5, 8.
  eps = dqn.per_actor_epsilons(0, 3, 3, 0.4, 7.0)
  np.testing.assert_allclose(eps, [0.4, 0.4 ** 4.5, 0.4 ** 8])
  # A bundle's slice of a bigger cluster: actors 2 and 3 of 4 (exponents
  # 1 + 7 * 2/3 and 8).
  np.testing.assert_allclose(dqn.per_actor_epsilons(2, 2, 4, 0.4, 7.0),
                             [0.4 ** (1 + 14 / 3), 0.4 ** 8])


def test_weighted_dqn_loss_scales_each_transition():
  q = tf.constant([[0.0], [0.0]])
  # Errors 0.5 and 1 (huber 0.125 and 0.5); weights 1 and 0.5: mean 0.1875
  loss, _ = dqn.dqn_loss(q, tf.constant([0, 0]), tf.constant([0.5, 1.0]), 1.0,
                         weights=tf.constant([1.0, 0.5]))
  assert float(loss) == pytest.approx(0.1875)


def test_the_staleness_threshold_grows_with_the_cluster():
  # 2 learners: the floor of 100 holds; 100 learners at 4 per learner: 400.
  assert dqn.staleness_threshold(100, 4.0, 2) == 100
  assert dqn.staleness_threshold(100, 4.0, 100) == 400
  assert dqn.staleness_threshold(0, 4.0, 100) == 0  # off stays off
