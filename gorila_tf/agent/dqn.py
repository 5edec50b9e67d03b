"""The DQN maths as small pure functions (Mnih et al. 2015; Nair et al. 2015).

Each function is tested against hand-worked numbers in tests/agent/test_dqn.py.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def linear_epsilon(frame: float, start: float, end: float,
                   decay_frames: float) -> float:
  """Epsilon decayed linearly from `start` to `end` over `decay_frames`."""
  if decay_frames <= 0:
    return end
  fraction = min(max(frame / decay_frames, 0.0), 1.0)
  return start + fraction * (end - start)


def per_actor_epsilons(first_actor: int, count: int, total_actors: int,
                       epsilon: float, alpha: float) -> np.ndarray:
  """Ape-X's fixed exploration: actor i of N uses eps^(1 + alpha i / (N - 1)).

  Args:
    first_actor: global index of the first of this bundle's actors.
    count: actors in this bundle.
    total_actors: N, actors in the whole cluster.
    epsilon: the base epsilon (0.4 in Ape-X).
    alpha: the spread (7 in Ape-X).

  Returns:
    [count] epsilons, from eps (actor 0) down to eps^(1 + alpha) (actor N-1).
  """
  i = np.arange(first_actor, first_actor + count, dtype=np.float64)
  exponent = 1.0 + alpha * i / max(total_actors - 1, 1)
  return np.power(epsilon, exponent)


def clip_rewards(rewards: tf.Tensor, clip: float) -> tf.Tensor:
  """Clips rewards to [-clip, clip]; `clip == 0` leaves them unchanged."""
  if clip <= 0:
    return rewards
  return tf.clip_by_value(rewards, -clip, clip)


def n_step_returns(rewards: tf.Tensor, discounts: tf.Tensor,
                   gamma: float) -> tuple[tf.Tensor, tf.Tensor]:
  """Discounted n-step returns and the discount of the bootstrap value.

  G = sum_k gamma^k (prod_{j<k} d_j) r_k and bootstrap = gamma^n prod_j d_j,
  so a terminal step (d = 0) cuts both the later rewards and the bootstrap.
  With n = 1 this is (r, gamma * d): one-step Q-learning.

  Args:
    rewards: [B, n] rewards of n consecutive steps (clipped if wanted).
    discounts: [B, n] 0 where a step ends the target (terminal or life lost).
    gamma: the discount factor.

  Returns:
    ([B] returns, [B] bootstrap discounts).
  """
  n = rewards.shape[-1]
  # alive[k] = prod_{j<k} d_j: 1 for the first step, then cut by terminals.
  alive = tf.math.cumprod(discounts, axis=-1, exclusive=True)
  powers = tf.constant([gamma ** k for k in range(n)], rewards.dtype)
  returns = tf.reduce_sum(powers * alive * rewards, axis=-1)
  bootstrap = gamma ** n * tf.reduce_prod(discounts, axis=-1)
  return returns, bootstrap


def q_learning_targets(returns: tf.Tensor, bootstrap: tf.Tensor,
                       next_q_target: tf.Tensor,
                       next_q_online: tf.Tensor | None = None) -> tf.Tensor:
  """Targets G + bootstrap * Q_target(s', a*), with no gradient into them.

  a* = argmax_a Q_target(s', a) (DQN), or argmax_a Q_online(s', a) when
  `next_q_online` is given (double DQN, van Hasselt et al. 2016).

  Args:
    returns: [B] n-step returns.
    bootstrap: [B] discount of the bootstrap value (gamma^n, 0 if terminal).
    next_q_target: [B, A] target-network values of the next states.
    next_q_online: [B, A] online values of the next states, for double DQN.

  Returns:
    [B] targets.
  """
  if next_q_online is None:
    next_value = tf.reduce_max(next_q_target, axis=-1)
  else:
    best = tf.argmax(next_q_online, axis=-1, output_type=tf.int32)
    next_value = tf.gather(next_q_target, best, axis=-1, batch_dims=1)
  return tf.stop_gradient(returns + bootstrap * next_value)


def huber(x: tf.Tensor, delta: float) -> tf.Tensor:
  """Huber loss: x^2/2 inside [-delta, delta], linear outside (DQN's error clip)."""
  abs_x = tf.abs(x)
  quadratic = tf.minimum(abs_x, delta)
  linear = abs_x - quadratic
  return 0.5 * quadratic * quadratic + delta * linear


def dqn_loss(q_values: tf.Tensor, actions: tf.Tensor, targets: tf.Tensor,
             delta: float,
             weights: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
  """Mean Huber TD loss of the taken actions.

  Args:
    q_values: [B, A] online-network values of the states.
    actions: [B] integer actions taken.
    targets: [B] Q-learning targets.
    delta: Huber threshold.
    weights: optional [B] per-transition weights (importance sampling).

  Returns:
    (scalar mean loss, [B] TD errors target - Q(s, a)).
  """
  chosen = tf.gather(q_values, tf.cast(actions, tf.int32), axis=-1, batch_dims=1)
  td_errors = targets - chosen
  losses = huber(td_errors, delta)
  if weights is not None:
    losses = weights * losses
  return tf.reduce_mean(losses), td_errors


def is_stale(version_now: tf.Tensor, replica_version: tf.Tensor,
             max_staleness: int) -> tf.Tensor:
  """Gorila's staleness test: was the gradient computed from parameters more
  than `max_staleness` updates older than the parameter server's? (0 = off)"""
  if max_staleness <= 0:
    return tf.constant(False)
  return version_now - replica_version > max_staleness


def staleness_threshold(max_staleness: int, per_learner: float,
                        num_learners: int) -> int:
  """The staleness test's threshold for a cluster of `num_learners`.

  With W learners updating the ps asynchronously, a healthy gradient is
  about W - 1 updates old (the others' updates between its replica read and
  its application), so a fixed threshold that fits 2 learners would discard
  most gradients of 100. The threshold is the larger of `max_staleness` and
  `per_learner` x W; 0 stays off.
  """
  if max_staleness <= 0:
    return 0
  return max(max_staleness, int(round(per_learner * num_learners)))


def update_loss_stats(mean: tf.Tensor, var: tf.Tensor, count: tf.Tensor,
                      x: tf.Tensor, decay: float):
  """Running mean and variance of the absolute loss, exponentially weighted.

  For the first 1/(1 - decay) losses the weight is 1/(count + 1), i.e. a
  plain average, so the statistics do not lean towards their zero start.

  Returns:
    (mean, var, count) after seeing x.
  """
  count = count + 1.0
  alpha = tf.maximum(1.0 - decay, 1.0 / count)
  diff = x - mean
  increment = alpha * diff
  mean = mean + increment
  var = (1.0 - alpha) * (var + diff * increment)
  return mean, var, count


def is_loss_outlier(x: tf.Tensor, mean: tf.Tensor, var: tf.Tensor,
                    count: tf.Tensor, k: float, warmup: int) -> tf.Tensor:
  """Gorila's loss test: |loss| above mean + k std of the learner's recent
  losses, once `warmup` losses have been seen (k <= 0 turns it off)."""
  if k <= 0:
    return tf.constant(False)
  return tf.logical_and(count >= warmup, x > mean + k * tf.sqrt(var))
