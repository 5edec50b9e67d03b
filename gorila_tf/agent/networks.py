"""Q-networks as parameters plus a pure function that applies them.

A network is a flat list of variables (`QNetwork.params`) and `apply(spec,
params, observations) -> Q-values`, a pure function of tensors. Learners need
that split: a Gorila learner computes gradients on its own replica of the
parameters (a snapshot read from the parameter server), not on the variables
the ps is updating, and sends the gradients back.

Architectures:
  * 'nature_cnn': Mnih et al. 2015 — conv 32x8x8/4, conv 64x4x4/2,
    conv 64x3x3/1, FC 512, one output per action (ReLU between).
  * 'nips_cnn': Mnih et al. 2013 (the NIPS workshop DQN) — conv 16x8x8/4,
    conv 32x4x4/2, FC 256: ~3.0M multiply-adds per frame stack against the
    Nature network's ~9.3M, and 0.68M parameters against 1.69M, for
    machines where the update's arithmetic is what limits learning.
  * 'mlp': fully connected hidden layers (vector games such as CartPole).
  * `dueling=True` (Wang et al. 2016, option): separate 512-unit value and
    advantage streams, Q = V + A - mean(A).

The same `QNetwork` is created sharded on the ps tasks (under
`ParameterServerStrategy.scope()` a variable larger than the partitioner's
minimum becomes a `ShardedVariable`), and plain in actors and evaluators; a
checkpoint of one restores into the other.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import tensorflow as tf

from gorila_tf import config as config_lib
from gorila_tf.agent import environments

# Per convolutional kind: (filters, kernel, stride) per conv layer, then the
# units of its one hidden FC layer.
CNNS = {'nature_cnn': (((32, 8, 4), (64, 4, 2), (64, 3, 1)), 512),
        'nips_cnn': (((16, 8, 4), (32, 4, 2)), 256)}


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
  """Everything that fixes the parameter shapes."""

  kind: str
  observation_shape: tuple[int, ...]
  observation_dtype: str
  num_actions: int
  hidden: tuple[int, ...]  # MLP hidden sizes, or a CNN's FC units: (512,)
  dueling: bool = False
  init: str = 'torch'  # config.NetworkInit: how initial_values draws
  compute_dtype: str = 'float32'  # config.ComputeDtype: the layers' arithmetic


def make_spec(network: config_lib.NetworkConfig,
              info: environments.EnvInfo) -> NetworkSpec:
  config_lib.check_choice('network.kind', network.kind, config_lib.NetworkKind)
  hidden = ((CNNS[network.kind][1],) if network.kind in CNNS
            else tuple(network.mlp_layers))
  config_lib.check_choice('network.init', network.init, config_lib.NetworkInit)
  config_lib.check_choice('network.compute_dtype', network.compute_dtype,
                          config_lib.ComputeDtype)
  return NetworkSpec(network.kind, tuple(info.observation_shape),
                     np.dtype(info.frame_dtype).name, info.num_actions, hidden,
                     network.dueling, network.init,
                     resolve_compute_dtype(network.compute_dtype))


# /proc/cpuinfo flags of the instructions that run bfloat16 convolutions and
# matrix products natively (oneDNN's avx512_core_bf16 and amx kernels).
BF16_CPU_FLAGS = ('avx512_bf16', 'amx_bf16')


def cpu_has_bf16(cpuinfo: str = '/proc/cpuinfo') -> bool:
  """Whether this CPU has bfloat16 instructions (False where unknown)."""
  try:
    with open(cpuinfo) as f:
      for line in f:
        if line.startswith('flags'):
          return any(flag in line.split() for flag in BF16_CPU_FLAGS)
  except OSError:
    pass
  return False


def resolve_compute_dtype(name: str, cpuinfo: str = '/proc/cpuinfo') -> str:
  """'auto' becomes 'bfloat16' on a CPU with bfloat16 instructions, else
  'float32'; the others are themselves."""
  if name != 'auto':
    return name
  return 'bfloat16' if cpu_has_bf16(cpuinfo) else 'float32'


def _conv_output_size(observation_shape: Sequence[int], convs) -> int:
  _, height, width = observation_shape
  for _, kernel, stride in convs:
    height = (height - kernel) // stride + 1
    width = (width - kernel) // stride + 1
  return height * width * convs[-1][0]


def _head_shapes(features: int, hidden: Sequence[int], outputs: int):
  """Kernel/bias shapes of an MLP from `features` to `outputs`."""
  shapes, size = [], features
  for units in hidden:
    shapes += [(f'dense_{len(shapes) // 2}', (size, units)),
               (f'dense_{len(shapes) // 2}_bias', (units,))]
    size = units
  return shapes + [('out', (size, outputs)), ('out_bias', (outputs,))]


def param_shapes(spec: NetworkSpec) -> list[tuple[str, tuple[int, ...]]]:
  """(name, shape) of every parameter, in `apply`'s order."""
  shapes = []
  if spec.kind in CNNS:
    convs = CNNS[spec.kind][0]
    channels = spec.observation_shape[0]
    for i, (filters, kernel, _) in enumerate(convs):
      shapes += [(f'conv_{i}', (kernel, kernel, channels, filters)),
                 (f'conv_{i}_bias', (filters,))]
      channels = filters
    features = _conv_output_size(spec.observation_shape, convs)
  else:
    features = int(np.prod(spec.observation_shape))
  if not spec.dueling:
    return shapes + _head_shapes(features, spec.hidden, spec.num_actions)
  value = _head_shapes(features, spec.hidden, 1)
  advantage = _head_shapes(features, spec.hidden, spec.num_actions)
  return (shapes + [(f'value_{n}', s) for n, s in value]
          + [(f'advantage_{n}', s) for n, s in advantage])


def initial_values(spec: NetworkSpec, seed: int) -> list[np.ndarray]:
  """Initial parameters, drawn as `spec.init` says.

  'torch': every weight and bias uniform in +-1/sqrt(fan_in) (Torch7's
  nn.Linear / nn.SpatialConvolution reset(), which Nature DQN's released code
  used; PyTorch draws biases the same way). 'glorot': Glorot-uniform weights,
  zero biases (Keras' defaults).
  """
  rng = np.random.default_rng(seed)
  values, fan_in = [], 1
  for name, shape in param_shapes(spec):
    if not name.endswith('bias'):
      receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
      fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
      if spec.init == 'glorot':
        limit = np.sqrt(6.0 / (fan_in + fan_out))
      else:
        limit = 1.0 / np.sqrt(fan_in)
    elif spec.init == 'glorot':
      values.append(np.zeros(shape, np.float32))
      continue
    else:  # a bias: its kernel's fan-in, the one drawn just before
      limit = 1.0 / np.sqrt(fan_in)
    values.append(rng.uniform(-limit, limit, shape).astype(np.float32))
  return values


def _mlp(params: Sequence[tf.Tensor], x: tf.Tensor, name: str = '',
         hidden: dict | None = None) -> tf.Tensor:
  """Dense layers from (kernel, bias) pairs; ReLU on all but the last.

  `hidden`, if given, receives each ReLU layer's output under `<name>dense_i`.
  """
  for i in range(0, len(params), 2):
    x = tf.matmul(x, params[i]) + params[i + 1]
    if i + 2 < len(params):
      x = tf.nn.relu(x)
      if hidden is not None:
        hidden[f'{name}dense_{i // 2}'] = x
  return x


def apply(spec: NetworkSpec, params: Sequence[tf.Tensor],
          observations: tf.Tensor) -> tf.Tensor:
  """Q-values [B, num_actions] of observations [B, *observation_shape]."""
  return _forward(spec, params, observations, None)


def activations(spec: NetworkSpec, params: Sequence[tf.Tensor],
                observations: tf.Tensor) -> tuple[tf.Tensor, dict]:
  """Q-values and every hidden ReLU layer's output, by layer name.

  Layer names are the parameter names without `_bias` (`conv_0`, `dense_0`,
  `value_dense_0`, ...); conv outputs are [B, H, W, channels].
  """
  hidden: dict[str, tf.Tensor] = {}
  q_values = _forward(spec, params, observations, hidden)
  return q_values, hidden


def _forward(spec: NetworkSpec, params: Sequence[tf.Tensor],
                           observations: tf.Tensor,
                           hidden: dict | None) -> tf.Tensor:
  """`apply`, also filling `hidden` (if not None) as `activations` describes.

  In `spec.compute_dtype` bfloat16 the parameters are cast on the way in
  (their gradients come back float32 through the casts) and the Q-values
  leave as float32, so targets, loss and optimizer stay float32.
  """
  dtype = tf.as_dtype(spec.compute_dtype)
  if dtype != tf.float32:
    params = [tf.cast(p, dtype) for p in params]
  if spec.kind in CNNS:
    convs = CNNS[spec.kind][0]
    # [B, stack, H, W] uint8 -> [B, H, W, stack] in [0, 1]: CPU convs need NHWC.
    x = tf.transpose(tf.cast(observations, tf.float32) / 255.0, [0, 2, 3, 1])
    x = tf.cast(x, dtype)
    for i, (_, _, stride) in enumerate(convs):
      x = tf.nn.conv2d(x, params[2 * i], stride, 'VALID') + params[2 * i + 1]
      x = tf.nn.relu(x)
      if hidden is not None:
        hidden[f'conv_{i}'] = x
    trunk = 2 * len(convs)
  else:
    x = tf.cast(observations, dtype)
    trunk = 0
  x = tf.reshape(x, [tf.shape(x)[0], -1])
  head = params[trunk:]
  if not spec.dueling:
    return tf.cast(_mlp(head, x, '', hidden), tf.float32)
  stream = len(head) // 2  # value and advantage streams have the same depth
  value = tf.cast(_mlp(head[:stream], x, 'value_', hidden), tf.float32)
  advantage = tf.cast(_mlp(head[stream:], x, 'advantage_', hidden), tf.float32)
  return value + advantage - tf.reduce_mean(advantage, axis=-1, keepdims=True)


def layer_names(spec: NetworkSpec) -> list[str]:
  """Each layer's name (its kernel's parameter name), in `apply`'s order."""
  return [name for name, _ in param_shapes(spec) if not name.endswith('bias')]


def layer_of(param_name: str) -> str:
  """The layer a parameter belongs to: `conv_0_bias` -> `conv_0`."""
  return param_name[:-len('_bias')] if param_name.endswith('_bias') else param_name


class QNetwork(tf.Module):
  """The variables of a Q-network; `__call__` applies them."""

  def __init__(self, spec: NetworkSpec, seed: int = 0, name: str = 'q_network'):
    super().__init__(name=name)
    self.spec = spec
    # Created with the strategy's creator when under a strategy scope, so
    # large ones become ShardedVariables spread over the ps tasks.
    self.params = [tf.Variable(value, name=param_name)
                   for (param_name, _), value in zip(param_shapes(spec),
                                                     initial_values(spec, seed))]

  def __call__(self, observations: tf.Tensor) -> tf.Tensor:
    return apply(self.spec, self.read(), observations)

  def read(self) -> list[tf.Tensor]:
    """Whole parameter tensors (shards joined)."""
    return [tf.convert_to_tensor(p) for p in self.params]

  def parts(self) -> list[tf.Variable]:
    """The underlying variables: each shard of a sharded parameter separately."""
    parts = []
    for p in self.params:
      parts.extend(getattr(p, 'variables', [p]))
    return parts

  def part_names(self) -> list[str]:
    """The parameter name of each of `parts()`, in the same order."""
    return [name for (name, _), p in zip(param_shapes(self.spec), self.params)
            for _ in getattr(p, 'variables', [p])]

  def shapes(self) -> list[tf.TensorShape]:
    return [tf.TensorShape(p.shape) for p in self.params]


def make_q_network(network: config_lib.NetworkConfig,
                   info: environments.EnvInfo, seed: int = 0) -> QNetwork:
  return QNetwork(make_spec(network, info), seed)


def read_over_the_wire(net: QNetwork, dtype: tf.DType) -> list[tf.Tensor]:
  """Whole float32 parameter tensors, sent across the network as `dtype`.

  Each part is cast where it lives (its ps) and back where it is used, so
  with bfloat16 a read moves half the bytes.
  """
  if dtype == tf.float32:
    return net.read()
  whole = []
  for p in net.params:
    parts = []
    for part in getattr(p, 'variables', [p]):
      with tf.device(part.device):
        parts.append(tf.cast(part, dtype))
    joined = parts[0] if len(parts) == 1 else tf.concat(parts, axis=0)
    whole.append(tf.cast(joined, tf.float32))
  return whole


def split_like(whole: tf.Tensor, parts: Sequence[tf.Variable]) -> list[tf.Tensor]:
  """Splits a whole-parameter tensor along axis 0 as `parts` are split."""
  if len(parts) == 1:
    return [whole]
  return tf.split(whole, [int(p.shape[0]) for p in parts], axis=0)


def split_gradients(gradients: Sequence[tf.Tensor],
                    net: QNetwork) -> list[tuple[tf.Tensor, tf.Variable]]:
  """(gradient, variable) pairs for every part of a possibly sharded net."""
  pairs = []
  for gradient, param in zip(gradients, net.params):
    parts = list(getattr(param, 'variables', [param]))
    pairs.extend(zip(split_like(gradient, parts), parts))
  return pairs
