"""A greedy policy as a self-contained SavedModel, and reading one back.

The SavedModel holds plain (unsharded) variables and two functions:
`action(observations) -> int32 actions` (the default serving signature) and
`q_values(observations) -> [B, num_actions]`; it loads with
`tf.saved_model.load` alone. Beside it, gorila_config.json holds the run's
config (the game, its preprocessing, the evaluation protocol), for
gorila-eval and gorila-play --policy. Written by gorila-export and by the
evaluator when a run reaches run.stop_at_eval_return (<run_dir>/policy).
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from gorila_tf import config as config_lib
from gorila_tf import errors
from gorila_tf.agent import networks
from gorila_tf.runtime import run_dir as run_dir_lib

CONFIG_FILE = 'gorila_config.json'  # beside the SavedModel: the run's config

def make_policy_module(q_net):
  """A tf.Module whose functions close over copies of the parameters."""
  spec = q_net.spec
  signature = [tf.TensorSpec((None,) + tuple(spec.observation_shape),
                             tf.as_dtype(spec.observation_dtype), 'observations')]

  class GreedyPolicy(tf.Module):

    def __init__(self):
      super().__init__(name='greedy_policy')
      self.params = [tf.Variable(p, trainable=False) for p in q_net.read()]
      self.num_actions = tf.constant(spec.num_actions)

    @tf.function(input_signature=signature)
    def q_values(self, observations):
      return networks.apply(spec, self.params, observations)

    @tf.function(input_signature=signature)
    def action(self, observations):
      return tf.argmax(self.q_values(observations), axis=-1, output_type=tf.int32)

  return GreedyPolicy()


def export(q_net, out: str, config=None) -> None:
  """Writes the SavedModel to `out`, and `config` (the game, the evaluation
  protocol) beside it for gorila-eval and gorila-play --policy."""
  policy = make_policy_module(q_net)
  tf.saved_model.save(policy, out, signatures={'serving_default': policy.action,
                                               'q_values': policy.q_values})
  if config is not None:
    run_dir_lib.write_json_atomic(os.path.join(out, CONFIG_FILE),
                                  config_lib.to_dict(config))


def load_policy(directory: str, overrides=()):
  """(the exported policy's Q-function, its config) from `directory`.

  Raises ConfigError when it is not an exported policy of this package.
  """
  config_path = os.path.join(directory, CONFIG_FILE)
  if not os.path.exists(os.path.join(directory, 'saved_model.pb')):
    raise errors.ConfigError(f'--policy={directory!r} is not a SavedModel '
                             'directory (no saved_model.pb); give the directory '
                             'gorila-export or a run\'s policy/ wrote')
  if not os.path.exists(config_path):
    raise errors.ConfigError(f'--policy={directory!r} has no {CONFIG_FILE} (the '
                             'game it plays); export it again with gorila-export')
  game_changes = [o for o in overrides if o.strip().startswith('env.')]
  with open(config_path) as f:
    config = config_lib.from_dict(json.load(f))
  if game_changes:
    raise errors.ConfigError(
        f'--set={game_changes[0]}: a policy plays the game it was trained on, '
        f'{config.env.id}, as its network sees it; the env section cannot be '
        'changed (eval.* can)')
  config = config_lib.validate(config_lib.apply_overrides(config, overrides))
  policy = tf.saved_model.load(directory)
  # The closure keeps the loaded object (its variables) alive: its bound
  # function alone would outlive them.
  return lambda observations: policy.q_values(observations), config
