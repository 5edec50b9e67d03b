"""Test-only fault injection: the config's `faults` section, off in every preset.

Kept outside the agent: each fault wraps or replaces a piece the builder
makes, so the learner and the dataset carry no test hooks.

  faults.nan_after_updates   NanLossLearner: the loss and gradients are NaN
                             from that update on (the chief must stop the run)
  faults.slow_worker/slow_ms batch_delay_ms: that worker's dataset waits before
                             each batch (a slow learner; stale gradients)
  faults.kill_units_at_update  planted_collapse: the chief sets every hidden
                             layer's biases to -1000 (a dead network)
  faults.end_replay_after_batches  end_replay_stream: every learner's replay
                             stream ends after that many batches, as Reverb ends
                             one whose sampler a network fault cancelled
"""

from __future__ import annotations

from typing import Callable, Optional

import tensorflow as tf

from gorila_tf import config as config_lib
from gorila_tf.agent import learner as learner_lib
from gorila_tf.agent import networks


class NanLossLearner(learner_lib.Learner):
  """A learner whose loss and gradients turn NaN at `nan_after` updates."""

  def __init__(self, *args, nan_after: int, **kwargs):
    self._nan_after = nan_after
    super().__init__(*args, **kwargs)

  def gradient(self, batch, online, target):
    loss, gradients, chosen_q = super().gradient(batch, online, target)
    nan = self._optimizer.iterations >= self._nan_after
    poison = lambda t: tf.where(nan, tf.constant(float('nan')), t)
    return poison(loss), [poison(g) for g in gradients], chosen_q


def learner_class(faults: config_lib.FaultsConfig):
  """(class, extra keyword arguments) of the learner the faults ask for."""
  if faults.nan_after_updates > 0:
    return NanLossLearner, {'nan_after': faults.nan_after_updates}
  return learner_lib.Learner, {}


def batch_delay_ms(faults: config_lib.FaultsConfig, worker: tf.Tensor) -> tf.Tensor:
  """Milliseconds worker `worker`'s dataset waits before each batch."""
  return tf.where(worker == faults.slow_worker, faults.slow_ms, 0)


def end_replay_stream(faults: config_lib.FaultsConfig,
                      dataset: tf.data.Dataset) -> tf.data.Dataset:
  """The learner's dataset, ending after faults.end_replay_after_batches."""
  if not faults.end_replay_after_batches:
    return dataset
  return dataset.take(faults.end_replay_after_batches)


def planted_collapse(faults: config_lib.FaultsConfig,
                     q_net: networks.QNetwork) -> Optional[Callable[[], None]]:
  """A function that kills every hidden unit of `q_net`, traced now (the
  chief calls only functions traced at start), or None when not asked for."""
  if not faults.kill_units_at_update:
    return None
  hidden_biases = [p for (name, _), p in zip(networks.param_shapes(q_net.spec),
                                             q_net.params)
                   if name.endswith('_bias') and 'out' not in name]

  @tf.function
  def plant():
    for bias in hidden_biases:
      bias.assign(tf.fill(bias.shape, -1000.0))

  plant.get_concrete_function()
  return plant
