"""The parameter server's update rules: centered RMSProp and Adam.

Written out instead of using Keras optimizers because a Gorila learner decides
per gradient whether the ps applies it (staleness and loss tests), which needs
the update inside `tf.cond` in a closure running on a worker; Keras' apply
path wants a cross-replica merge there. These are plain variable updates.

Slots are created next to their variable (same ps task), so an update moves
only the gradient across the network.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from gorila_tf import config as config_lib


def rmsprop_update(variable, gradient, ms, mg, learning_rate, rho, epsilon):
  """Centered RMSProp (Graves 2013; Nature DQN):

    ms <- rho ms + (1 - rho) g^2
    mg <- rho mg + (1 - rho) g
    v  <- v - lr g / sqrt(ms - mg^2 + eps)
  """
  ms = ms.assign(rho * ms + (1.0 - rho) * tf.square(gradient))
  mg = mg.assign(rho * mg + (1.0 - rho) * gradient)
  return variable.assign_sub(
      learning_rate * gradient / tf.sqrt(ms - tf.square(mg) + epsilon))


def adam_update(variable, gradient, m, v, step, learning_rate, epsilon,
                beta_1=0.9, beta_2=0.999):
  """Adam (Kingma & Ba 2015) at step `step` (1-based), bias-corrected."""
  m = m.assign(beta_1 * m + (1.0 - beta_1) * gradient)
  v = v.assign(beta_2 * v + (1.0 - beta_2) * tf.square(gradient))
  step = tf.cast(step, tf.float32)
  rate = learning_rate * tf.sqrt(1.0 - beta_2 ** step) / (1.0 - beta_1 ** step)
  return variable.assign_sub(rate * m / (tf.sqrt(v) + epsilon))


# Each rule's slots, named after its symbols: RMSProp's mean square `ms` and
# mean gradient `mg`; Adam's first and second moments `m` and `v`.
SLOT_NAMES: dict[str, tuple[str, ...]] = {
    'rmsprop': ('ms', 'mg'),
    'adam': ('m', 'v'),
}


class Optimizer(tf.Module):
  """Slots for every variable, and `apply` for one gradient per variable.

  `slots[name][i]` is slot `name` (see SLOT_NAMES) of the i-th variable.
  """

  def __init__(self, learner: config_lib.LearnerConfig,
               variables: Sequence[tf.Variable]):
    super().__init__(name='optimizer')
    config_lib.check_choice('learner.optimizer', learner.optimizer,
                            config_lib.OptimizerName)
    self._config = learner
    self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False,
                                  name='iterations')
    extended = tf.distribute.get_strategy().extended
    self.slots: dict[str, list[tf.Variable]] = {
        name: [] for name in SLOT_NAMES[learner.optimizer]}
    for variable in variables:
      with extended.colocate_vars_with(variable):
        for slots in self.slots.values():
          slots.append(tf.Variable(tf.zeros(variable.shape), trainable=False))

  def apply(self, gradients_and_variables) -> tf.Operation:
    """One update of every variable; counts one iteration."""
    c = self._config
    step = self.iterations.assign_add(1)
    updates = []
    for i, (gradient, variable) in enumerate(gradients_and_variables):
      slots = {name: slots[i] for name, slots in self.slots.items()}
      # Run the update where the variable and its slots live: then only the
      # gradient crosses the network. Placed on the learner instead, every
      # update would pull both slots and push them and the step back (five
      # transfers of the whole network instead of one).
      with tf.device(variable.device):
        if c.optimizer == 'rmsprop':
          updates.append(rmsprop_update(variable, gradient, slots['ms'],
                                        slots['mg'], c.learning_rate,
                                        c.rmsprop_rho, c.optimizer_epsilon))
        else:
          updates.append(adam_update(variable, gradient, slots['m'], slots['v'],
                                     step, c.learning_rate, c.optimizer_epsilon))
    return tf.group(updates)
