"""Learners: DQN gradient steps that run as closures on the worker tasks.

The chief schedules `train_steps` with `ClusterCoordinator.schedule`; the
coordinator runs each closure on a free worker, handing it that worker's own
replay iterator. One closure is one round of a Gorila learner:

    target = read the target network from the ps
    repeat learner.steps_per_closure times:
      every learner.replica_sync_period steps:
        replica, version = read the online network from the ps
        (learner.prefetch_replica: read during the step before, before its
        gradient is applied: the read overlaps that step's computation and
        the replica is one update older)
      batch = sample this bundle's replay
      gradient, loss = DQN gradient on the replica
      discard it if the replica is more than max_staleness updates old, or
        if loss > mean + k std of this learner's recent losses
      else send it to the ps (applied there with RMSProp, asynchronously)

Learners never see environments; actors never see the optimizer.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple, Optional, Sequence

import tensorflow as tf

from gorila_tf import config as config_lib
from gorila_tf.agent import dqn
from gorila_tf.agent import networks
from gorila_tf.agent import optimizers
from gorila_tf.agent import replay

PRIORITY_FLOOR = 1e-6  # keeps every item sampleable under prioritized replay


class StepOutcome(NamedTuple):
  """What became of gradients, as int64 counts.

  One step's outcome has exactly one of the four set to 1; a round's is the
  sum of its steps' outcomes (`plus`).
  """

  applied: tf.Tensor  # sent to the ps and applied there
  stale: tf.Tensor  # discarded: computed on a replica too many updates old
  outlier: tf.Tensor  # discarded: loss far above this learner's recent ones
  nonfinite: tf.Tensor  # discarded: NaN or inf in the loss or a gradient

  @classmethod
  def zeros(cls) -> 'StepOutcome':
    return cls(*[tf.constant(0, tf.int64)] * len(cls._fields))

  @classmethod
  def counted(cls, applied, stale, outlier, nonfinite) -> 'StepOutcome':
    """From boolean tensors: each becomes 0 or 1."""
    return cls(*[tf.cast(flag, tf.int64)
                 for flag in (applied, stale, outlier, nonfinite)])

  def plus(self, other: 'StepOutcome') -> 'StepOutcome':
    return StepOutcome(*[a + b for a, b in zip(self, other)])


@dataclasses.dataclass(kw_only=True)
class LearnerState:
  """Counters and per-learner statistics, kept on the ps with the model.

  Row w of the [num_workers, ...] variables belongs to the learner on worker
  w; a worker runs one closure at a time, so rows are never written at once.
  """

  applied: tf.Variable  # gradients applied
  discarded_stale: tf.Variable  # gradients from a too old replica
  discarded_outlier: tf.Variable  # gradients with an outlying loss
  loss_stats: tf.Variable  # [W, 3]: running mean, variance, count of |loss|
  updates_by_worker: tf.Variable  # [W] gradients applied per learner
  nonfinite: tf.Variable  # NaN/inf losses or gradients seen (never applied)

  @classmethod
  def create(cls, num_workers: int) -> 'LearnerState':
    counter = lambda: tf.Variable(0, dtype=tf.int64, trainable=False)
    return cls(applied=counter(), discarded_stale=counter(),
               discarded_outlier=counter(),
               loss_stats=tf.Variable(tf.zeros([num_workers, 3]), trainable=False),
               updates_by_worker=tf.Variable(tf.zeros([num_workers], tf.int64),
                                             trainable=False),
               nonfinite=counter())

  def checkpoint_items(self) -> dict:
    # Not dataclasses.asdict: it deep-copies, and the checkpoint would hold
    # copies of the variables (saved as they were, restored into nothing).
    return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def worker_compute_device(devices: Sequence) -> str | None:
  """'/device:GPU:0' if any worker of the cluster has a GPU, else None.

  `devices`: the chief's `tf.config.list_logical_devices()` once it is
  connected to the cluster (remote devices included). The closure is traced
  once for all workers; a device without a job resolves on whichever worker
  runs it, and a worker without a GPU falls back to its CPU (soft placement).
  """
  for device in devices:
    if device.device_type == 'GPU' and '/job:worker/' in device.name:
      return '/device:GPU:0'
  return None


class Learner:
  """Owns the update rule; the variables it updates live on the ps tasks."""

  def __init__(self, q_net: networks.QNetwork,
               target_net: networks.QNetwork,
               optimizer: optimizers.Optimizer, state: LearnerState,
               learner: config_lib.LearnerConfig,
               replay_config: config_lib.ReplayConfig | None = None,
               replay_addresses: Sequence[str] = (),
               compute_device: str | None = None, num_learners: int = 1,
               worker_index: Optional[Callable[[], tf.Tensor]] = None):
    """`compute_device`: where the forward and backward passes run on each
    worker (e.g. '/device:GPU:0', see `worker_compute_device`); None: the
    worker's default placement. `worker_index`: this learner's row in the
    state; default, the index of the worker running the closure (a learner
    in one process, with no coordinator, passes `lambda: 0`)."""
    self._worker_index = worker_index or (
        tf.distribute.coordinator.experimental_get_current_worker_index)
    self.compute_device = compute_device
    # Gorila's staleness threshold, scaled to the cluster (dqn.py).
    self.max_staleness = dqn.staleness_threshold(
        learner.max_staleness, learner.staleness_per_learner, num_learners)
    self._wire_dtype = tf.as_dtype(learner.transfer_dtype)
    # XLA: the forward and backward pass as one compiled function per step.
    self._gradient = (tf.function(self.gradient, jit_compile=True)
                      if learner.xla else self.gradient)
    self._replay = replay_config or config_lib.ReplayConfig()
    self._replay_addresses = list(replay_addresses)
    self._q_net = q_net
    self._target_net = target_net
    self._optimizer = optimizer
    self._state = state
    self._config = learner

  def gradient(self, batch, online, target):
    """DQN loss and its gradient w.r.t. the replica `online`.

    With prioritized replay the loss is importance-weighted and the items'
    priorities are set to their new |TD error|.
    """
    c, spec = self._config, self._q_net.spec
    rewards = dqn.clip_rewards(batch['reward'], c.reward_clip)
    returns, bootstrap = dqn.n_step_returns(rewards, batch['discount'], c.discount)
    next_q_target = networks.apply(spec, target, batch['next_observation'])
    next_q_online = (networks.apply(spec, online, batch['next_observation'])
                     if c.double_dqn else None)
    targets = dqn.q_learning_targets(returns, bootstrap, next_q_target,
                                     next_q_online)
    weights = None
    if self._replay.prioritized:
      weights = replay.importance_weights(batch['probability'], batch['table_size'],
                                          self._replay.importance_exponent)
    with tf.GradientTape() as tape:
      tape.watch(online)
      q_values = networks.apply(spec, online, batch['observation'])
      loss, td_errors = dqn.dqn_loss(q_values, batch['action'], targets,
                                     c.huber_delta, weights)
    if self._replay.prioritized:
      replay.update_priorities(self._replay_addresses, batch['server'],
                               batch['key'], tf.abs(td_errors) + PRIORITY_FLOOR)
    chosen_q = tf.gather(q_values, batch['action'], axis=-1, batch_dims=1)
    return loss, tape.gradient(loss, online), chosen_q

  def _step(self, batch, online, target, version, stats):
    """One sample -> gradient -> accept or discard."""
    c = self._config
    with tf.device(self.compute_device):
      loss, gradients, chosen_q = self._gradient(batch, online, target)
    # A NaN or inf never reaches the ps; the chief stops the run on seeing one.
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(t))
                            for t in [loss] + list(gradients)])
    # The ps's update count once the gradient exists: its age at application.
    # Without the dependency the read may run first, at the replica's read,
    # and every gradient would look fresh.
    with tf.control_dependencies([loss, *gradients]):
      now = self._optimizer.iterations.read_value()
    staleness = now - version
    stale = dqn.is_stale(now, version, self.max_staleness)
    outlier = tf.logical_and(
        tf.logical_not(stale),
        dqn.is_loss_outlier(loss, *stats, c.loss_outlier_k, c.loss_outlier_warmup))
    accept = tf.logical_and(finite,
                            tf.logical_not(tf.logical_or(stale, outlier)))

    def apply():
      # Sent as transfer_dtype; the ps casts back to float32 (optimizers.py).
      sent = [tf.cast(g, self._wire_dtype) for g in gradients]
      with tf.control_dependencies([self._optimizer.apply(
          networks.split_gradients(sent, self._q_net))]):
        return tf.constant(True)

    tf.cond(accept, apply, lambda: tf.constant(False))
    stats = tf.cond(finite,
                    lambda: dqn.update_loss_stats(*stats, loss, c.loss_stats_decay),
                    lambda: stats)
    outcome = StepOutcome.counted(applied=accept, stale=stale, outlier=outlier,
                                  nonfinite=tf.logical_not(finite))
    return (loss, chosen_q, tf.cast(staleness, tf.float32), outcome, stats,
            gradients)

  @tf.function
  def train_steps(self, iterator) -> dict[str, tf.Tensor]:
    """One learner round; returns the round's means, counts and samples."""
    worker = tf.cast(self._worker_index(), tf.int64)
    # The target network changes only every C updates: read once per round.
    target = networks.read_over_the_wire(self._target_net, self._wire_dtype)
    row = tf.gather(self._state.loss_stats, worker)
    stats = (row[0], row[1], row[2])
    loss_sum = q_sum = tf.constant(0.0)
    staleness = []
    counts = StepOutcome.zeros()
    steps, period = self._config.steps_per_closure, self._config.replica_sync_period
    prefetch = self._config.prefetch_replica
    version, online = self._read_replica()
    for step in range(steps):
      if step and step % period == 0 and not prefetch:
        version, online = self._read_replica()
      batch = next(iterator)
      refresh = prefetch and (step + 1) % period == 0 and step + 1 < steps
      if refresh:
        # Read before this step's apply, in program order (TensorFlow keeps
        # the order of a resource's reads and writes): the read overlaps
        # this step's gradient, and the replica misses its update.
        next_version, next_online = self._read_replica()
      loss, chosen_q, step_staleness, outcome, stats, gradients = self._step(
          batch, online, target, version, stats)
      if refresh:
        version, online = next_version, next_online
      loss_sum += loss
      q_sum += tf.reduce_mean(chosen_q)
      staleness.append(step_staleness)
      counts = counts.plus(outcome)
    self._record(worker, counts, stats)
    steps = float(self._config.steps_per_closure)
    results = {'loss': loss_sum / steps, 'mean_q': q_sum / steps,
               'staleness': tf.reduce_mean(staleness), 'applied': counts.applied,
               'q_values': chosen_q,  # the last batch's, for a histogram
               'staleness_by_step': tf.stack(staleness),
               'discarded_stale': counts.stale,
               'discarded_outlier': counts.outlier,
               'nonfinite': counts.nonfinite,
               # The last step's, per layer: health/<layer>/gradient_norm.
               **self._gradient_norms(gradients)}
    # Handed back through the ps task holding the counters, not from this
    # worker: the chief copies each closure's results from where they live,
    # and in TF 2.15 a copy pending on a worker that went silent (paused, cut
    # off) holds up the chief's copies from every other worker too.
    with tf.device(self._state.applied.device):
      return tf.nest.map_structure(tf.identity, results)

  def _read_replica(self):
    """(version, replica): the online network read from the ps, and the
    update count just before the read (the replica's age is counted from it)."""
    version = self._optimizer.iterations.read_value()
    with tf.control_dependencies([version]):
      return version, networks.read_over_the_wire(self._q_net, self._wire_dtype)

  def _gradient_norms(self, gradients) -> dict[str, tf.Tensor]:
    """{'gradient_norm/<layer>': norm of its kernel's and bias's gradients}."""
    squares: dict[str, list[tf.Tensor]] = {}
    for (name, _), gradient in zip(networks.param_shapes(self._q_net.spec),
                                   gradients):
      squares.setdefault(networks.layer_of(name), []).append(
          tf.reduce_sum(tf.square(gradient)))
    return {f'gradient_norm/{layer}': tf.sqrt(tf.add_n(s))
            for layer, s in squares.items()}

  def _record(self, worker, counts: StepOutcome, stats) -> None:
    s = self._state
    s.applied.assign_add(counts.applied)
    s.discarded_stale.assign_add(counts.stale)
    s.discarded_outlier.assign_add(counts.outlier)
    s.nonfinite.assign_add(counts.nonfinite)
    s.updates_by_worker.scatter_add(
        tf.IndexedSlices(tf.reshape(counts.applied, [1]),
                         tf.reshape(tf.cast(worker, tf.int32), [1])))
    s.loss_stats.scatter_update(
        tf.IndexedSlices(tf.reshape(tf.stack(stats), [1, 3]),
                         tf.reshape(tf.cast(worker, tf.int32), [1])))

  @tf.function
  def sync_target(self) -> None:
    """Copies the online network into the target network (on the ps tasks)."""
    for target, online in zip(self._target_net.params, self._q_net.params):
      target.assign(online)
