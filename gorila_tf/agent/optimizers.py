"""The parameter server's update rules: centered RMSProp and Adam.

Written out instead of using Keras optimizers because a Gorila learner decides
per gradient whether the ps applies it (staleness and loss tests), which needs
the update inside `tf.cond` in a closure running on a worker; Keras' apply
path wants a cross-replica merge there. These are plain variable updates.

Slots are created next to their variable (same ps task), so an update moves
only the gradient across the network.

Epsilon and the batch: this package's loss is the MEAN over the batch
(dqn.dqn_loss), so its gradient is the summed-loss gradient divided by
`batch_size` (B). Nature DQN's released code sums instead: deepmind/dqn
dqn/NeuralQLearner.lua (getQUpdate, qLearnMinibatch) writes each transition's
clipped TD error into the backward pass's output gradient and applies the
accumulated gradient with no division by the minibatch size, then steps by
lr g / sqrt(g2 - g^2 + 0.01) (its run_gpu: minibatch_size=32). A mean-loss
gradient g/B has moments g/B and g^2/B^2, so the same 0.01 under the square
root weighs B^2 (1024 at B = 32) times more against the variance, and the step
shrinks by up to B when that variance is small (the usual case). Hence
`learner.optimizer_epsilon_units`: 'summed_loss' states epsilon in the
reference code's units and `mean_loss_epsilon` converts it,

    RMSProp: lr (g/B) / sqrt(var/B^2 + eps/B^2) = lr g / sqrt(var + eps)
    Adam:    lr (m/B) / (sqrt(v)/B + eps/B)     = lr m / (sqrt(v) + eps)

so the update is the summed-loss one, up to float rounding, for any batch
size (tests/agent/test_optimizers.py checks it by hand and on DQN batches). DeepMind's DQN Zoo, which also averages, writes the
same conversion as a constant: google-deepmind/dqn_zoo dqn_zoo/dqn/run_atari.py
(optimizer_epsilon = 0.01 / 32**2, optax centered rmsprop, decay 0.95); Dopamine
(google/dopamine dopamine/agents/dqn/configs/dqn_nature.gin, mean loss in
dqn_agent.py) uses 1e-5, about the same. Scaling epsilon rather than summing
the loss keeps the loss values (summaries, Gorila's loss-outlier statistics)
and the Adam presets' tuned epsilons ('mean_loss') as they were.
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


ADAM_BETA_1, ADAM_BETA_2 = 0.9, 0.999  # Adam's moment decays (Kingma & Ba)


def adam_update(variable, gradient, m, v, step, learning_rate, epsilon,
                beta_1=ADAM_BETA_1, beta_2=ADAM_BETA_2):
  """Adam (Kingma & Ba 2015) at step `step` (1-based), bias-corrected."""
  m = m.assign(beta_1 * m + (1.0 - beta_1) * gradient)
  v = v.assign(beta_2 * v + (1.0 - beta_2) * tf.square(gradient))
  step = tf.cast(step, tf.float32)
  rate = learning_rate * tf.sqrt(1.0 - beta_2 ** step) / (1.0 - beta_1 ** step)
  return variable.assign_sub(rate * m / (tf.sqrt(v) + epsilon))


def fused_rmsprop_update(variable, gradient, ms, mg, scratch, learning_rate,
                         rho, epsilon):
  """`rmsprop_update` in one kernel (ResourceApplyCenteredRMSProp).

  The kernel also keeps a momentum accumulator; with momentum 0 it holds only
  this step's delta, so `scratch` is a buffer the kernel overwrites (not
  state, not checkpointed). use_locking: two learners' updates of the same
  variable must not interleave through that shared buffer.
  """
  return tf.raw_ops.ResourceApplyCenteredRMSProp(
      var=variable.handle, mg=mg.handle, ms=ms.handle, mom=scratch.handle,
      lr=tf.cast(learning_rate, tf.float32), rho=tf.cast(rho, tf.float32),
      momentum=tf.constant(0.0), epsilon=tf.cast(epsilon, tf.float32),
      grad=gradient, use_locking=True)


def fused_adam_update(variable, gradient, m, v, step, learning_rate, epsilon,
                      beta_1=ADAM_BETA_1, beta_2=ADAM_BETA_2, use_locking=True):
  """`adam_update` in one kernel (ResourceApplyAdam), bias-corrected by step.

  use_locking, as the RMSProp kernel: two learners' applies to one variable
  are serialized (TF leaves unlocked concurrent applies undefined; False is
  only for the test that shows it).
  """
  step = tf.cast(step, tf.float32)
  return tf.raw_ops.ResourceApplyAdam(
      var=variable.handle, m=m.handle, v=v.handle,
      beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
      lr=tf.cast(learning_rate, tf.float32), beta1=tf.constant(beta_1),
      beta2=tf.constant(beta_2), epsilon=tf.cast(epsilon, tf.float32),
      grad=gradient, use_locking=use_locking)


# The power of the gradient's scale that each rule's epsilon carries: RMSProp
# adds it to a second moment (gradient^2), Adam to sqrt(v) (gradient).
EPSILON_GRADIENT_POWER: dict[str, int] = {'rmsprop': 2, 'adam': 1}


def mean_loss_epsilon(learner: config_lib.LearnerConfig) -> float:
  """The epsilon to apply to this package's (batch-mean) loss gradients.

  `learner.optimizer_epsilon` as is for 'mean_loss'; for 'summed_loss',
  divided by batch_size^2 (RMSProp) or batch_size (Adam), which gives the
  summed-loss update with the stated epsilon (module docstring).
  """
  config_lib.check_choice('learner.optimizer', learner.optimizer,
                          config_lib.OptimizerName)
  config_lib.check_choice('learner.optimizer_epsilon_units',
                          learner.optimizer_epsilon_units, config_lib.EpsilonUnits)
  if learner.optimizer_epsilon_units == 'mean_loss':
    return learner.optimizer_epsilon
  power = EPSILON_GRADIENT_POWER[learner.optimizer]
  return learner.optimizer_epsilon / learner.batch_size ** power


# Each rule's slots, named after its symbols: RMSProp's mean square `ms` and
# mean gradient `mg`; Adam's first and second moments `m` and `v`.
SLOT_NAMES: dict[str, tuple[str, ...]] = {
    'rmsprop': ('ms', 'mg'),
    'adam': ('m', 'v'),
}


class _Unsaved:
  """Holds what a tf.Module must not track (so no checkpoint saves it)."""

  def __init__(self):
    self.buffers: list[tf.Variable] = []


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
    self.epsilon = mean_loss_epsilon(learner)
    self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False,
                                  name='iterations')
    extended = tf.distribute.get_strategy().extended
    self.slots: dict[str, list[tf.Variable]] = {
        name: [] for name in SLOT_NAMES[learner.optimizer]}
    self._fused = learner.fused_update
    # Not state: the fused RMSProp kernel's overwritten momentum buffer.
    self._scratch = _Unsaved()
    for variable in variables:
      with extended.colocate_vars_with(variable):
        for slots in self.slots.values():
          slots.append(tf.Variable(tf.zeros(variable.shape), trainable=False))
        if self._fused and learner.optimizer == 'rmsprop':
          self._scratch.buffers.append(
              tf.Variable(tf.zeros(variable.shape), trainable=False))

  def learning_rate(self, step: tf.Tensor) -> tf.Tensor:
    """The step size of update `step` (1 for the first): learning_rate,
    reached linearly over learner.learning_rate_warmup updates, then with
    learner.learning_rate_end falling linearly to that at update
    learner.learning_rate_end_update. Adam's first steps move every weight
    by about the learning rate whatever its gradient; rising to it keeps
    that early push from driving whole units below zero at once. The fall
    is for a policy that plays but swings from checkpoint to checkpoint."""
    c = self._config
    rate = tf.constant(c.learning_rate, tf.float32)
    step = tf.cast(step, tf.float32)
    if c.learning_rate_warmup:
      rate *= tf.minimum(step / float(c.learning_rate_warmup), 1.0)
    if c.learning_rate_end is not None:
      start = float(c.learning_rate_warmup)
      fallen = tf.clip_by_value(
          (step - start) / (c.learning_rate_end_update - start), 0.0, 1.0)
      rate = rate * (1.0 - fallen) + c.learning_rate_end * fallen
    return rate

  def last_step_sq_norms(self) -> list[tf.Tensor]:
    """Squared norm of the step each variable (part) took at the last update.

    Read from the slots, where they live (only scalars cross the network):
    Adam's is exactly the last update (m and v hold its moments, t is
    `iterations`); fused centered RMSProp's too (its scratch buffer holds the
    last step); written-out RMSProp keeps no gradient, so its figure is the
    step of the running mean gradient, lr mg / sqrt(ms - mg^2 + eps).
    """
    c = self._config
    norms = []
    t = tf.cast(self.iterations, tf.float32)
    learning_rate = self.learning_rate(self.iterations)
    for i in range(len(next(iter(self.slots.values())))):
      slots = {name: slots[i] for name, slots in self.slots.items()}
      with tf.device(slots[SLOT_NAMES[c.optimizer][0]].device):
        if c.optimizer == 'adam':
          rate = (learning_rate * tf.sqrt(1.0 - ADAM_BETA_2 ** t)
                  / tf.maximum(1.0 - ADAM_BETA_1 ** t, 1e-12))
          step = rate * slots['m'] / (tf.sqrt(slots['v']) + self.epsilon)
        elif self._fused:
          step = tf.convert_to_tensor(self._scratch.buffers[i])
        else:
          step = learning_rate * slots['mg'] / tf.sqrt(
              slots['ms'] - tf.square(slots['mg']) + self.epsilon)
        norms.append(tf.reduce_sum(tf.square(step)))
    return norms

  def apply(self, gradients_and_variables) -> tf.Operation:
    """One update of every variable; counts one iteration."""
    c = self._config
    step = self.iterations.assign_add(1)
    learning_rate = self.learning_rate(step)
    updates = []
    for i, (gradient, variable) in enumerate(gradients_and_variables):
      slots = {name: slots[i] for name, slots in self.slots.items()}
      # Run the update where the variable and its slots live: then only the
      # gradient crosses the network. Placed on the learner instead, every
      # update would pull both slots and push them and the step back (five
      # transfers of the whole network instead of one).
      with tf.device(variable.device):
        # A gradient may arrive in bfloat16 (learner.transfer_dtype).
        gradient = tf.cast(gradient, tf.float32)
        if c.optimizer == 'rmsprop' and self._fused:
          updates.append(fused_rmsprop_update(
              variable, gradient, slots['ms'], slots['mg'],
              self._scratch.buffers[i], learning_rate, c.rmsprop_rho,
              self.epsilon))
        elif self._fused:
          updates.append(fused_adam_update(
              variable, gradient, slots['m'], slots['v'], step,
              learning_rate, self.epsilon))
        elif c.optimizer == 'rmsprop':
          updates.append(rmsprop_update(variable, gradient, slots['ms'],
                                        slots['mg'], learning_rate,
                                        c.rmsprop_rho, self.epsilon))
        else:
          updates.append(adam_update(variable, gradient, slots['m'], slots['v'],
                                     step, learning_rate, self.epsilon))
    return tf.group(updates)
