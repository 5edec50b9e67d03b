"""Q-networks: the Nature-DQN convnet for Atari and an MLP for vector games.

Both are TF-Agents `QNetwork`s. The same factory builds the sharded copy on
the parameter servers (inside `strategy.scope()`), the actors' local copies
and the evaluator's copy, so variables line up one to one, except that a
sharded variable appears as several consecutive parts (see `merge_shards`).
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
from tf_agents.networks import q_network
from tf_agents.specs import tensor_spec

from gorila_tf import config as config_lib
from gorila_tf import environments

# Nature DQN (Mnih et al. 2015): (filters, kernel, stride) per conv layer.
NATURE_CONV_LAYERS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))
NATURE_FC_LAYERS = (512,)


def _frames_to_nhwc(frames: tf.Tensor) -> tf.Tensor:
  """[B, stack, H, W] uint8 -> [B, H, W, stack] float in [0, 1] (CPU convs need NHWC)."""
  return tf.transpose(tf.cast(frames, tf.float32) / 255.0, [0, 2, 3, 1])


def make_q_network(network: config_lib.NetworkConfig,
                   info: environments.EnvInfo) -> q_network.QNetwork:
  """Builds the Q-network and creates its variables."""
  observation_spec = tensor_spec.TensorSpec(info.observation_shape,
                                            tf.as_dtype(info.frame_dtype))
  action_spec = tensor_spec.BoundedTensorSpec((), tf.int32, 0,
                                              info.num_actions - 1)
  if network.kind == 'nature_cnn':
    net = q_network.QNetwork(
        observation_spec, action_spec,
        preprocessing_layers=tf.keras.layers.Lambda(_frames_to_nhwc),
        conv_layer_params=NATURE_CONV_LAYERS,
        fc_layer_params=NATURE_FC_LAYERS)
  elif network.kind == 'mlp':
    net = q_network.QNetwork(
        observation_spec, action_spec,
        preprocessing_layers=tf.keras.layers.Flatten(),
        fc_layer_params=tuple(network.mlp_layers))
  else:
    raise config_lib.ConfigError(f'network.kind={network.kind!r} is not one of '
                                 "'nature_cnn', 'mlp'")
  net.create_variables()
  return net


def merge_shards(parts: Sequence[tf.Tensor],
                 shapes: Sequence[tf.TensorShape]) -> list[tf.Tensor]:
  """Joins the parts of sharded variables back into whole tensors.

  A partitioned variable is listed as consecutive parts split along axis 0.
  `shapes` are the whole variables' shapes, in the same order.

  Args:
    parts: tensors as listed by a network built under a partitioner.
    shapes: shapes of the unpartitioned network's variables.

  Returns:
    One tensor per entry of `shapes`.

  Raises:
    ValueError: if the parts do not add up to the shapes.
  """
  merged, index = [], 0
  for shape in shapes:
    rows, pieces = 0, []
    while rows < shape[0] if shape.rank else not pieces:
      if index >= len(parts):
        raise ValueError(f'ran out of parts while rebuilding shape {shape}')
      part = parts[index]
      if part.shape[1:] != shape[1:]:
        raise ValueError(f'part {index} of shape {part.shape} does not fit {shape}')
      pieces.append(part)
      rows += part.shape[0] if shape.rank else 1
      index += 1
    if rows != (shape[0] if shape.rank else 1):
      raise ValueError(f'parts add up to {rows} rows, expected shape {shape}')
    merged.append(pieces[0] if len(pieces) == 1 else tf.concat(pieces, axis=0))
  if index != len(parts):
    raise ValueError(f'{len(parts) - index} parts left over after merging')
  return merged


def variable_shapes(net: tf.Module) -> list[tf.TensorShape]:
  return [v.shape for v in net.variables]
