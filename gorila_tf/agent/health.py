"""Learning health: is the Q-network still alive?

A DQN whose ReLUs all die computes the same Q-values for every state, gets no
gradient below the dead layer, and never recovers; its run goes on spending
frames with nothing to show. The chief probes the online network on a fixed
batch of real states every `health.every_updates` updates:

    states = probe_states(game, health.probe_states, seed)   # once per run
    every health.every_updates updates:
      figures = HealthProbe.measure()     # per layer: dead share, weight norm,
                                          # last step / weights; Q spread
      verdict = HealthWatch.judge(figures)
      a layer >= health.dead_share_warn dead: one warning line
      Q spread < health.min_q_spread of its mean |Q| on health.collapse_probes
        probes in a row: collapsed -> one line, and with
        health.stop_on_collapse the run stops (exit status 5)

A unit is dead when it is 0 on every probe state (a conv channel: at every
position too). The Q spread is the standard deviation across the probe
states of Q(s, a), averaged over actions, relative to the mean |Q|.

Figures are TensorBoard scalars under `health/`; gradient norms per layer
come from the learners' results (`learner.Learner.train_steps`).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from gorila_tf import config as config_lib
from gorila_tf.agent import environments
from gorila_tf.agent import networks

PROBE_STRIDE = 4  # agent steps of random play between two probe states
REPEAT_EVERY = 10  # a collapse the run trains on is said again every 10 probes


def probe_states(env_config: config_lib.EnvConfig, count: int,
                 seed: int) -> np.ndarray:
  """`count` real states of random play, every PROBE_STRIDE-th step of one env.

  The same states for the same game and seed, so probes of one run (and of
  runs of one seed) are comparable.
  """
  env = environments.VectorEnv(env_config, 1, seed)
  rng = np.random.default_rng(seed)
  info = environments.env_info(env_config)
  states = []
  try:
    observations = env.reset()
    while len(states) < count:
      for _ in range(PROBE_STRIDE):
        observations, *_ = env.step(rng.integers(0, info.num_actions, size=1))
      states.append(observations[0])
  finally:
    env.close()
  return np.stack(states)


def dead_shares(unit_max: dict[str, np.ndarray]) -> dict[str, float]:
  """Share of each layer's units whose largest output over the probe is <= 0."""
  return {layer: float(np.mean(np.asarray(m) <= 0)) for layer, m in unit_max.items()}


def q_spread(q_values: np.ndarray) -> tuple[float, np.ndarray, float]:
  """(spread, per-action spread, spread relative to the mean |Q|).

  The spread of action a is the standard deviation of Q(s, a) over the
  probe states; the overall spread is their mean.
  """
  q_values = np.asarray(q_values, np.float64)
  per_action = q_values.std(axis=0)
  spread = float(per_action.mean())
  scale = float(np.abs(q_values).mean())
  relative = spread / scale if scale > 0 else (0.0 if spread == 0 else np.inf)
  return spread, per_action, relative


@dataclasses.dataclass(frozen=True)
class Figures:
  """One probe of the network."""

  updates: int
  dead: dict[str, float]  # hidden layer -> share of dead units
  q_spread: float
  q_spread_by_action: tuple[float, ...]
  q_spread_relative: float
  q_mean: float
  weight_norms: dict[str, float]  # layer -> norm of its kernel and bias
  step_ratios: dict[str, float]  # layer -> |last step| / |weights|

  def scalars(self) -> dict[str, float]:
    """TensorBoard tags and values."""
    values = {'health/q_spread': self.q_spread,
              'health/q_spread_relative': self.q_spread_relative,
              'health/q_mean': self.q_mean}
    for a, spread in enumerate(self.q_spread_by_action):
      values[f'health/q_spread/action_{a}'] = spread
    for layer, share in self.dead.items():
      values[f'health/{layer}/dead_share'] = share
    for layer, norm in self.weight_norms.items():
      values[f'health/{layer}/weight_norm'] = norm
    for layer, ratio in self.step_ratios.items():
      values[f'health/{layer}/step_ratio'] = ratio
    return values


def figures_from(updates: int, unit_max: dict, q_values: np.ndarray,
                 weight_sq: dict[str, float],
                 step_sq: dict[str, float]) -> Figures:
  """Figures from a probe's raw outputs (squared norms summed per layer)."""
  spread, per_action, relative = q_spread(q_values)
  norms = {layer: float(np.sqrt(v)) for layer, v in weight_sq.items()}
  ratios = {layer: float(np.sqrt(step_sq[layer]) / norms[layer])
            if norms[layer] > 0 else float('nan') for layer in step_sq}
  return Figures(updates=updates, dead=dead_shares(unit_max), q_spread=spread,
                 q_spread_by_action=tuple(float(s) for s in per_action),
                 q_spread_relative=relative,
                 q_mean=float(np.mean(q_values)), weight_norms=norms,
                 step_ratios=ratios)


def per_layer(names: Sequence[str], values: Sequence[float]) -> dict[str, float]:
  """Sums per-parameter values into their layers (`conv_0` + `conv_0_bias`)."""
  sums: dict[str, float] = {}
  for name, value in zip(names, values):
    layer = networks.layer_of(name)
    sums[layer] = sums.get(layer, 0.0) + float(value)
  return sums


class HealthProbe:
  """Runs a network on the probe states; traced once, at construction.

  `read_params` returns the network's whole parameters (a sharded network's
  `read`); `step_sq_norms`, if given, the squared norm of the last step of
  each optimizer part (`optimizers.Optimizer.last_step_sq_norms`), with
  `part_names` the parameter each part belongs to.
  """

  def __init__(self, spec: networks.NetworkSpec, states: np.ndarray,
               read_params: Callable[[], list],
               step_sq_norms: Callable[[], list] | None = None,
               part_names: Sequence[str] = ()):
    self._names = [name for name, _ in networks.param_shapes(spec)]
    self._part_names = list(part_names)
    states = tf.constant(states)

    @tf.function
    def measure():
      params = read_params()
      q_values, hidden = networks.activations(spec, params, states)
      # A unit's largest output over states (and positions, for channels).
      unit_max = {layer: tf.reduce_max(tf.reshape(h, [-1, h.shape[-1]]), axis=0)
                  for layer, h in hidden.items()}
      weight_sq = [tf.reduce_sum(tf.square(p)) for p in params]
      steps = step_sq_norms() if step_sq_norms else []
      return q_values, unit_max, weight_sq, steps

    measure.get_concrete_function()
    self._measure = measure

  def measure(self, updates: int) -> Figures:
    q_values, unit_max, weight_sq, steps = self._measure()
    return figures_from(
        updates, {k: v.numpy() for k, v in unit_max.items()}, q_values.numpy(),
        per_layer(self._names, [w.numpy() for w in weight_sq]),
        per_layer(self._part_names, [s.numpy() for s in steps]))


@dataclasses.dataclass(frozen=True)
class Verdict:
  collapsed: bool  # flat on `collapse_probes` probes in a row
  warnings: tuple[str, ...]  # lines to log now: dead layers, a flat probe
  collapse: str | None = None  # the collapse, when it is to be said now


class HealthWatch:
  """Turns probes into warnings and a collapse decision."""

  def __init__(self, health: config_lib.HealthConfig):
    self._config = health
    self._flat_in_a_row = 0
    self._warned_dead: set[str] = set()

  def judge(self, f: Figures) -> Verdict:
    c = self._config
    warnings = []
    dead = {layer for layer, share in f.dead.items()
            if share >= c.dead_share_warn}
    for layer in sorted(dead - self._warned_dead):
      warnings.append(
          f'health: {f.dead[layer]:.0%} of {layer}\'s units are dead (never '
          f'active on the probe states) at update {f.updates}; warned at '
          f'health.dead_share_warn={c.dead_share_warn}')
    self._warned_dead = dead
    flat = f.q_spread_relative < c.min_q_spread
    self._flat_in_a_row = self._flat_in_a_row + 1 if flat else 0
    collapsed = self._flat_in_a_row >= c.collapse_probes
    if flat and not collapsed:
      warnings.append(f'{describe_collapse(f, c)} (probe {self._flat_in_a_row} '
                      f'of {c.collapse_probes} before it is called a collapse)')
    # Said when called, then every REPEAT_EVERY probes while it lasts.
    say = collapsed and (self._flat_in_a_row - c.collapse_probes) % REPEAT_EVERY == 0
    return Verdict(collapsed, tuple(warnings),
                   describe_collapse(f, c) if say else None)


def describe_collapse(f: Figures, health: config_lib.HealthConfig) -> str:
  """One line: the Q spread and the deadest layer."""
  layer, share = max(f.dead.items(), key=lambda item: item[1],
                     default=('-', 0.0))
  return (f'health: the Q-network looks collapsed at update {f.updates}: Q '
          f'varies by {f.q_spread:.3g} across the probe states, '
          f'{f.q_spread_relative:.2g} of its mean |Q| (below '
          f'health.min_q_spread={health.min_q_spread:g}); deadest layer '
          f'{layer}: {share:.0%} of its units dead')
