"""An independent single-process DQN update, the yardstick of the equivalence test.

Shares no code with gorila_tf: Keras layers for the Nature network (Mnih et
al. 2015) or the 2013 workshop paper's smaller one, Keras' own optimizers
(Adam; centered RMSprop) for the update, NumPy for the targets. It follows
the published algorithm, with the options gorila_tf's presets use (n-step
returns, double DQN), and a Gorila learner's round (Nair et al. 2015): the
gradient is computed on a replica of the online network refreshed every
`replica_sync_period` updates and applied to the online network; the
target network is a copy of the online network refreshed every
`target_period` updates.

`dtype` float64 gives the same DQN with (practically) no rounding: the test
uses it to measure how far float32 rounding alone moves a run.
'mixed_bfloat16' is Keras' mixed-precision policy: float32 variables,
optimizer, targets and loss, the layers computing in bfloat16 (the Q-values
cast back to float32 by a float32 output layer), as gorila_tf's
`network.compute_dtype=bfloat16` means to.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# (filters, kernel, stride) per convolution and the hidden layer's units, as
# the papers print them: Mnih et al. 2015 (Nature) and 2013 (NIPS workshop).
NETWORKS = {'nature_cnn': (((32, 8, 4), (64, 4, 2), (64, 3, 1)), 512),
            'nips_cnn': (((16, 8, 4), (32, 4, 2)), 256)}
KERAS_SLOT_NAMES = {'m': 'm', 'v': 'v', 'ms': 'velocity', 'mg': 'average_gradient'}


MIXED = 'mixed_bfloat16'


def variable_dtype(dtype: str) -> str:
  """The dtype of the weights, targets and loss under `dtype`."""
  return 'float32' if dtype == MIXED else dtype


class StepSize(tf.keras.optimizers.schedules.LearningRateSchedule):
  """A step size through the points (0, 0), (warmup, rate), (end_update,
  end), constant after: a linear warm-up, then a linear fall. Keras counts
  updates from 0, so update k (1 for the first) is called with k - 1."""

  def __init__(self, rate: float, warmup: int, end: float, end_update: int):
    super().__init__()
    self._rate, self._warmup = rate, warmup
    self._end, self._end_update = end, end_update

  def __call__(self, iterations):
    k = tf.cast(iterations, tf.float64) + 1.0
    rising = self._rate * k / max(self._warmup, 1)
    falling = self._rate + (self._end - self._rate) * tf.minimum(
        (k - self._warmup) / (self._end_update - self._warmup), 1.0)
    return tf.cast(tf.where(k <= self._warmup, rising, falling), tf.float32)

  def get_config(self):
    return {'rate': self._rate, 'warmup': self._warmup, 'end': self._end,
            'end_update': self._end_update}


def q_network(num_actions: int, dtype: str, kind: str = 'nature_cnn'
              ) -> tf.keras.Model:
  """DQN's network on [B, 4, 84, 84] uint8 frames: convs, a hidden layer, Q
  per action (`kind` names the paper's, NETWORKS)."""
  convs, units = NETWORKS[kind]
  frames = tf.keras.Input((4, 84, 84), dtype='uint8')
  outer = variable_dtype(dtype)
  layer_dtype = tf.keras.mixed_precision.Policy(MIXED) if dtype == MIXED else dtype
  x = tf.keras.layers.Lambda(
      lambda f: tf.transpose(tf.cast(f, outer) / 255.0, [0, 2, 3, 1]),
      dtype=outer)(frames)
  for filters, kernel, stride in convs:
    x = tf.keras.layers.Conv2D(filters, kernel, stride, activation='relu',
                               dtype=layer_dtype)(x)
  x = tf.keras.layers.Flatten(dtype=layer_dtype)(x)
  x = tf.keras.layers.Dense(units, activation='relu', dtype=layer_dtype)(x)
  q = tf.keras.layers.Dense(num_actions, dtype=layer_dtype)(x)
  if dtype == MIXED:  # Keras' advice: the outputs in float32
    q = tf.keras.layers.Activation('linear', dtype='float32')(q)
  return tf.keras.Model(frames, q)


class ReferenceDQN:
  """DQN updates on batches of numpy arrays; see the module docstring.

  Args:
    weights: initial [conv kernel, conv bias, ..., out kernel, out bias].
    optimizer: 'adam' or 'rmsprop' (centered, rho `rho`).
    epsilon: the optimizer's epsilon for the loss `reduction` names.
    reduction: 'mean' or 'sum' of the per-transition Huber losses.
    network: a key of NETWORKS.
  """

  def __init__(self, weights, num_actions: int, *, optimizer: str,
               learning_rate: float, epsilon: float, rho: float = 0.95,
               reduction: str, discount: float, n_step: int, double: bool,
               replica_sync_period: int, target_period: int,
               batch_size: int, dtype: str = 'float32',
               prefetch_replica: bool = False, steps_per_closure: int = 1,
               schedule: tuple[int, float, int] | None = None,
               network: str = 'nature_cnn'):
    self.online, self.replica, self.target = (
        q_network(num_actions, dtype, network) for _ in range(3))
    for net in (self.online, self.replica, self.target):
      net.set_weights([np.asarray(w, variable_dtype(dtype)) for w in weights])
    if schedule is not None:  # (warmup, end, end_update)
      learning_rate = StepSize(learning_rate, *schedule)
    if optimizer == 'adam':
      self.optimizer = tf.keras.optimizers.Adam(
          learning_rate, epsilon=epsilon, jit_compile=False)
    else:
      self.optimizer = tf.keras.optimizers.RMSprop(
          learning_rate, rho=rho, epsilon=epsilon, centered=True,
          jit_compile=False)
    self.optimizer.build(self.online.trainable_variables)
    self._huber = tf.keras.losses.Huber(
        1.0, reduction='sum' if reduction == 'sum' else 'sum_over_batch_size')
    self._reduction = reduction
    self._dtype = variable_dtype(dtype)
    self._discount, self._n, self._double = discount, n_step, double
    self._replica_period, self._target_period = replica_sync_period, target_period
    # A prefetched replica is read before the update preceding its use is
    # applied, within a learner round of `steps_per_closure` updates (the
    # round's first replica is read fresh).
    self._prefetch, self._round = prefetch_replica, steps_per_closure
    self._prefetched = None
    self.updates = 0
    self.batch_size = batch_size  # the slots' units for a summed loss

  def targets(self, batch) -> np.ndarray:
    """G + gamma^n prod(d) Q_target(s', a*), a* from the replica if double."""
    rewards = np.clip(batch['reward'].astype(np.float64), -1.0, 1.0)
    discounts = batch['discount'].astype(np.float64)
    alive = np.cumprod(np.concatenate(
        [np.ones_like(discounts[:, :1]), discounts[:, :-1]], axis=1), axis=1)
    powers = self._discount ** np.arange(self._n)
    returns = (powers * alive * rewards).sum(axis=1)
    bootstrap = self._discount ** self._n * discounts.prod(axis=1)
    next_target = self.target(batch['next_observation']).numpy()
    if self._double:
      best = self.replica(batch['next_observation']).numpy().argmax(axis=1)
    else:
      best = next_target.argmax(axis=1)
    next_value = next_target[np.arange(len(best)), best]
    return (returns + bootstrap * next_value).astype(self._dtype)

  def update(self, batch) -> float:
    """One update; returns the mean Huber loss (as gorila_tf reports it)."""
    if self.updates % self._target_period == 0 and self.updates:
      self.target.set_weights(self.online.get_weights())
    position = self.updates % self._round
    if position == 0 or position % self._replica_period == 0:
      self.replica.set_weights(self._prefetched if position and self._prefetch
                               else self.online.get_weights())
    if (self._prefetch and (position + 1) % self._replica_period == 0
        and position + 1 < self._round):
      self._prefetched = self.online.get_weights()  # before this update
    targets = self.targets(batch)
    actions = batch['action'].astype(np.int64)
    with tf.GradientTape() as tape:
      q = self.replica(batch['observation'])
      chosen = tf.gather(q, actions, axis=1, batch_dims=1)
      loss = self._huber(targets[:, None], chosen[:, None])
    gradients = tape.gradient(loss, self.replica.trainable_variables)
    self.optimizer.apply_gradients(zip(gradients, self.online.trainable_variables))
    self.updates += 1
    mean = float(loss) / (len(actions) if self._reduction == 'sum' else 1)
    return mean

  def load(self, params, target, slots: dict, updates: int) -> None:
    """Sets the whole state: online and target weights, slots, update count.

    `slots` are in gorila_tf's units (a mean loss): a summed loss's
    gradients are batch_size times larger, its RMSProp moments scaled to match.
    """
    self.online.set_weights(params)
    self.target.set_weights(target)
    for name, values in slots.items():
      for variable, value in zip(self._slot_variables(name), values):
        variable.assign(value * self._slot_scale(name))
    self.optimizer.iterations.assign(updates)
    self.updates = updates

  def _slot_scale(self, name: str) -> float:
    """gorila_tf's mean-loss moments -> this summed loss's (B^power)."""
    power = {'m': 1, 'v': 2, 'ms': 2, 'mg': 1}[name]
    return float(self.batch_size) ** power if self._reduction == 'sum' else 1.0

  def _slot_variables(self, name: str) -> list:
    keras_name = KERAS_SLOT_NAMES[name]
    return [v for v in self.optimizer.variables
            if v.name.split('/')[0] == keras_name]

  def slots(self) -> dict[str, list[np.ndarray]]:
    """The optimizer's moments per weight, under gorila_tf's names and in its
    units (Keras names its variables `<slot>/<weight>`, one per weight)."""
    names = ('m', 'v') if isinstance(self.optimizer, tf.keras.optimizers.Adam) \
        else ('ms', 'mg')
    return {name: [v.numpy() / self._slot_scale(name)
                   for v in self._slot_variables(name)] for name in names}
