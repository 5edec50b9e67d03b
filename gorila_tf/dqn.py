"""The DQN maths as small pure functions (Mnih et al. 2015; Nair et al. 2015).

Each function is tested against hand-worked numbers in tests/test_dqn.py.
"""

from __future__ import annotations

import tensorflow as tf


def linear_epsilon(frame: float, start: float, end: float,
                   decay_frames: float) -> float:
  """Epsilon decayed linearly from `start` to `end` over `decay_frames`."""
  if decay_frames <= 0:
    return end
  fraction = min(max(frame / decay_frames, 0.0), 1.0)
  return start + fraction * (end - start)


def clip_rewards(rewards: tf.Tensor, clip: float) -> tf.Tensor:
  """Clips rewards to [-clip, clip]; `clip == 0` leaves them unchanged."""
  if clip <= 0:
    return rewards
  return tf.clip_by_value(rewards, -clip, clip)


def q_learning_targets(rewards: tf.Tensor, discounts: tf.Tensor,
                       next_q_values: tf.Tensor, gamma: float) -> tf.Tensor:
  """One-step Q-learning targets r + gamma * d * max_a' Q_target(s', a').

  Args:
    rewards: [B] rewards (already clipped if clipping is wanted).
    discounts: [B] 0 where the transition ends the target (terminal or life
      lost), 1 otherwise.
    next_q_values: [B, A] target-network values of the next states.
    gamma: the discount factor.

  Returns:
    [B] targets, with no gradient flowing into them.
  """
  max_next = tf.reduce_max(next_q_values, axis=-1)
  return tf.stop_gradient(rewards + gamma * discounts * max_next)


def huber(x: tf.Tensor, delta: float) -> tf.Tensor:
  """Huber loss: x^2/2 inside [-delta, delta], linear outside (DQN's error clip)."""
  abs_x = tf.abs(x)
  quadratic = tf.minimum(abs_x, delta)
  linear = abs_x - quadratic
  return 0.5 * quadratic * quadratic + delta * linear


def dqn_loss(q_values: tf.Tensor, actions: tf.Tensor, targets: tf.Tensor,
             delta: float) -> tuple[tf.Tensor, tf.Tensor]:
  """Mean Huber TD loss of the taken actions.

  Args:
    q_values: [B, A] online-network values of the states.
    actions: [B] integer actions taken.
    targets: [B] Q-learning targets.
    delta: Huber threshold.

  Returns:
    (scalar mean loss, [B] TD errors target - Q(s, a)).
  """
  chosen = tf.gather(q_values, tf.cast(actions, tf.int32), axis=-1, batch_dims=1)
  td_errors = targets - chosen
  return tf.reduce_mean(huber(td_errors, delta)), td_errors
