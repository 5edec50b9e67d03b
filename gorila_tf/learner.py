"""Learners: DQN gradient steps that run as closures on the worker tasks.

The chief schedules `train_steps` with `ClusterCoordinator.schedule`; the
coordinator runs each closure on a free worker, handing it that worker's own
replay iterator. A closure samples `learner.steps_per_closure` batches from
the bundle's Reverb table, computes the Huber TD loss against the target
network, and applies each gradient to the variables on the ps tasks.

Learners never see environments; actors never see the optimizer.
"""

from __future__ import annotations

import tensorflow as tf

from gorila_tf import config as config_lib
from gorila_tf import dqn


def make_optimizer(learner: config_lib.LearnerConfig) -> tf.keras.optimizers.Optimizer:
  """The optimizer the ps applies gradients with."""
  if learner.optimizer == 'rmsprop':
    # Nature DQN's RMSProp: centered, decay 0.95, epsilon 0.01, no momentum.
    return tf.keras.optimizers.RMSprop(
        learning_rate=learner.learning_rate, rho=learner.rmsprop_rho,
        epsilon=learner.optimizer_epsilon, centered=True)
  if learner.optimizer == 'adam':
    return tf.keras.optimizers.Adam(learning_rate=learner.learning_rate,
                                    epsilon=learner.optimizer_epsilon)
  raise config_lib.ConfigError(f'learner.optimizer={learner.optimizer!r} is not '
                               "one of 'rmsprop', 'adam'")


class Learner:
  """Owns the update rule; the variables it updates live on the ps tasks."""

  def __init__(self, strategy: tf.distribute.Strategy, q_net: tf.Module,
               target_net: tf.Module, optimizer: tf.keras.optimizers.Optimizer,
               learner: config_lib.LearnerConfig):
    self._strategy = strategy
    self._q_net = q_net
    self._target_net = target_net
    self._optimizer = optimizer
    self._config = learner

  def _update(self, batch: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
    """One gradient step on one batch; returns (loss, mean Q of taken actions)."""
    c = self._config
    next_q, _ = self._target_net(batch['next_observation'], training=False)
    rewards = dqn.clip_rewards(batch['reward'], c.reward_clip)
    targets = dqn.q_learning_targets(rewards, batch['discount'], next_q,
                                     c.discount)
    with tf.GradientTape() as tape:
      q_values, _ = self._q_net(batch['observation'], training=True)
      loss, _ = dqn.dqn_loss(q_values, batch['action'], targets, c.huber_delta)
    variables = self._q_net.trainable_variables
    gradients = tape.gradient(loss, variables)
    self._optimizer.apply_gradients(zip(gradients, variables))
    chosen_q = tf.gather(q_values, batch['action'], axis=-1, batch_dims=1)
    return loss, tf.reduce_mean(chosen_q)

  @tf.function
  def train_steps(self, iterator) -> tuple[tf.Tensor, tf.Tensor]:
    """`steps_per_closure` updates; returns their mean loss and mean Q."""
    loss_sum = tf.constant(0.0)
    q_sum = tf.constant(0.0)
    for _ in tf.range(self._config.steps_per_closure):
      batch = next(iterator)
      loss, mean_q = self._strategy.run(self._update, args=(batch,))
      loss_sum += loss
      q_sum += mean_q
    steps = float(self._config.steps_per_closure)
    return loss_sum / steps, q_sum / steps

  @tf.function
  def sync_target(self) -> None:
    """Copies the online network into the target network (on the ps tasks)."""
    for target, online in zip(self._target_net.variables, self._q_net.variables):
      target.assign(online)
