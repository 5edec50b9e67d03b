"""Typed configuration for a Gorila run: presets, overrides and validation.

A run is described by one frozen `GorilaConfig`. Named presets live in the
top-level `configs/` folder (installed as `gorila_tf.configs`); each preset
module defines `get_config() -> GorilaConfig`. Any field can be overridden from
the command line with `section.field=value`, e.g. `learner.batch_size=64`.

Units are part of the field names' comments and are the same everywhere:
  * frames: emulator frames (an Atari agent step is `env.frameskip` frames);
  * steps: agent steps (one action of one actor);
  * updates: gradient updates applied to the parameter server.

A field that takes one of a closed set of values is typed with a `Literal`
alias below (`NetworkKind`, ...): that alias is the one list of the allowed
values; overrides, `validate` and the modules that branch on the value read
it with `typing.get_args` (through `check_choice`).

Library code receives a `GorilaConfig`; only entry points read flags.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import json
import math
import pkgutil
import re
import typing
from typing import Any, Literal, Optional, Sequence

from gorila_tf.errors import ConfigError


# The closed sets of values, one source each (see the module docstring).
NetworkKind = Literal['nature_cnn', 'nips_cnn', 'mlp']  # 3 convs + 512 FC
# (Nature DQN); 2 convs + 256 FC (the 2013 NIPS workshop DQN); fully connected
OptimizerName = Literal['rmsprop', 'adam']  # centered RMSProp (Nature DQN); Adam
ReplayMode = Literal['local', 'global']  # a learner samples its own bundle; all
EpsilonSchedule = Literal['linear', 'per_actor']  # paper; Ape-X's fixed per actor
EpsilonUnits = Literal['mean_loss', 'summed_loss']  # optimizer_epsilon for the
# batch-mean loss (this package's); for the batch-summed loss (Nature DQN's code)
TransferDtype = Literal['float32', 'bfloat16']  # what crosses the network
NetworkInit = Literal['torch', 'glorot']  # see NetworkConfig.init
PictureView = Literal['screen', 'agent']  # the emulator's colour screen; the 84x84 input
ComputeDtype = Literal['float32', 'bfloat16', 'auto']  # what the network
# computes in; 'auto': bfloat16 where the CPU has bfloat16 instructions


def check_choice(key: str, value: Any, choices: Any) -> None:
  """Raises ConfigError unless `value` is one of the `Literal` type `choices`."""
  allowed = typing.get_args(choices)
  if value not in allowed:
    raise ConfigError(f'{key}={value!r} is not allowed; allowed: '
                      f'{", ".join(repr(a) for a in allowed)}')


def setting(default: Any, allowed: str = '',
            at_most: Optional[tuple[float, str]] = None) -> Any:
  """A config field with its range, declared once.

  `allowed` is the range as the error line says it: '>= 1', '> 0',
  'in [0, 1]', 'in [0, 1)', maybe followed by a note (' (0 = off)', ': why');
  `at_most` is (upper bound, why it is there). `validate` checks both.
  """
  return dataclasses.field(default=default,
                           metadata={'allowed': allowed, 'at_most': at_most})


# Upper bounds of the size-like settings; each says what a unit costs.
MAX_ENVS_PER_BUNDLE = 256
MAX_FRAME_STACK = 16
MAX_LAYERS, MAX_LAYER_UNITS = 16, 8192
# Replay memory per stored transition: Atari measured (docs/benchmarks.md,
# 2.9 KB of worker RSS per transition); vector games (CartPole) estimated.
REPLAY_BYTES_PER_TRANSITION = {'atari': 3_000, 'vector': 300}
MAX_REPLAY_GB = 64  # per bundle: replay lives in its worker's RAM
MAX_CHUNK_LENGTH = 32  # see replay.TransitionWriter: 48 items pending at most
MAX_BATCH_SIZE = 4096
MAX_N_STEP = 32
MAX_EVAL_EPISODES = 1000
MAX_EVAL_PARALLEL_ENVS = 64
MAX_RECORD_FRAMES = 2000
MAX_KEEP_CHECKPOINTS = 100
MAX_CLOSURES_IN_FLIGHT = 64
MAX_TASKS = 253  # the emulated hosts' subnet: 198.18.0.1 .. 198.18.0.253
MAX_SHARD_BYTES = 2 << 30  # gRPC's message limit
MAX_FREE_DISK_MB = 1 << 20  # 1 TiB
MAX_PROBE_STATES = 4096
MAX_COLLAPSE_PROBES = 100


@dataclasses.dataclass(frozen=True)
class EnvConfig:
  """Which game and how observations and rewards are shaped."""

  id: str = 'ALE/Pong-v5'  # gymnasium id: 'ALE/<Game>-v5' or 'CartPole-v1'
  frameskip: int = setting(4, '>= 1')  # frames per agent step (Atari: max of the last two)
  frame_stack: int = setting(4, '>= 1', at_most=(
      MAX_FRAME_STACK, 'every state, replay item and network input holds that many frames'))
  noop_max: int = setting(30, '>= 0')  # random no-op steps after each reset, at most (Atari)
  repeat_action_probability: float = setting(0.0, 'in [0, 1]')  # sticky actions; the paper: 0
  terminal_on_life_loss: bool = True  # a lost life ends the TD target, not the episode
  max_episode_frames: int = setting(108_000, '>= 1')  # training episodes end here, frames
  full_action_space: bool = False  # False: the game's minimal action set


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
  """The Q-network architecture."""

  kind: NetworkKind = 'nature_cnn'  # 'nature_cnn' (3 convs + 512 FC), 'nips_cnn'
  # (Mnih et al. 2013: 2 convs + 256 FC, a third of the arithmetic) or 'mlp'
  mlp_layers: tuple[int, ...] = (64, 64)  # hidden units per layer, used by 'mlp'
  dueling: bool = False  # dueling value/advantage head (Wang et al. 2016); paper: off
  init: NetworkInit = 'torch'  # 'torch': weights, biases in +-1/sqrt(fan_in)
  # (Nature DQN's Torch7 layers); 'glorot': Glorot weights, zero biases (Keras)
  compute_dtype: ComputeDtype = 'float32'  # the layers' arithmetic: 'bfloat16'
  # runs convolutions and matrix products in bfloat16 (oneDNN's AVX-512 BF16
  # kernels where the CPU has them) on float32 parameters, Q-values and loss,
  # in learners, actors and the evaluator alike; 'auto': bfloat16 where the
  # CPU has bfloat16 instructions (AVX-512 BF16, AMX), else float32 (without
  # them oneDNN emulates bfloat16, slower than float32); the paper: float32


@dataclasses.dataclass(frozen=True)
class ActorConfig:
  """How each bundle's actors act and report."""

  envs_per_bundle: int = setting(4, '>= 1', at_most=(
      MAX_ENVS_PER_BUNDLE, 'each env is an emulator and a replay writer with a '
      'stream of its own'))  # actors per bundle, stepped as one vector env
  epsilon_start: float = setting(1.0, 'in [0, 1]')  # exploration at frame 0
  epsilon_end: float = setting(0.1, 'in [0, 1]')  # exploration after the decay
  epsilon_decay_frames: int = setting(4_000_000, '>= 0')  # linear decay length, frames
  epsilon_schedule: EpsilonSchedule = 'linear'  # 'linear' (paper) or 'per_actor':
  # actor i of N fixed at eps^(1 + alpha i / (N - 1)) (Ape-X)
  per_actor_epsilon: float = setting(0.4, 'in [0, 1]')  # eps of 'per_actor'
  per_actor_alpha: float = setting(7.0, '>= 0')  # alpha of 'per_actor'
  param_refresh_steps: int = setting(100, '>= 1')  # vector steps between parameter pulls
  stats_interval_s: float = setting(1.0, '> 0')  # seconds between reports to the chief


@dataclasses.dataclass(frozen=True)
class ReplayConfig:
  """Each bundle's Reverb replay table."""

  capacity: int = setting(1_000_000, '>= 1')  # transitions kept per bundle (FIFO)
  min_size: int = 50_000  # transitions per bundle before its learner samples
  samples_per_insert: float = setting(8.0, '>= 0 (0 = free-running)')  # sampled
  # per inserted transition
  mode: ReplayMode = 'local'  # 'local': a learner samples its own bundle (the
  # paper's bundled mode); 'global': every learner samples every bundle
  chunk_length: int = setting(16, '>= 1', at_most=(
      MAX_CHUNK_LENGTH, 'items wait for their chunk to fill, and a writer keeps '
      'fewer than 50 items pending, where Reverb starts warning'))  # rows
  # Reverb compresses together
  prioritized: bool = False  # prioritized replay (Schaul et al. 2016, option)
  priority_exponent: float = setting(0.6, '>= 0')  # alpha: P(i) ~ priority^alpha
  importance_exponent: float = setting(0.4, 'in [0, 1]')  # beta of the IS weights


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
  """The DQN update each learner closure runs."""

  batch_size: int = setting(32, at_most=(
      MAX_BATCH_SIZE, f'an Atari batch of {MAX_BATCH_SIZE} is 145 MB of frames on '
      'its worker, three times over with prefetching'))  # transitions per update
  discount: float = setting(0.99, 'in [0, 1]')  # gamma
  optimizer: OptimizerName = 'rmsprop'  # centered RMSProp (Nature DQN) or 'adam'
  learning_rate: float = setting(0.00025, '> 0')  # step size of the ps update rule
  learning_rate_warmup: int = setting(0, '>= 0 (0 = off)')  # updates over which
  # the step size rises linearly from learning_rate / warmup to learning_rate
  learning_rate_end: Optional[float] = setting(None, '> 0')  # none: the step
  # size stays at learning_rate; else it falls linearly from learning_rate
  # (after the warm-up) to this at update learning_rate_end_update, then stays
  learning_rate_end_update: int = setting(0, '>= 0')  # see learning_rate_end
  rmsprop_rho: float = setting(0.95, 'in [0, 1)')  # squared-gradient decay
  optimizer_epsilon: float = setting(0.01, '> 0')  # RMSProp's (in the square
  # root) or Adam's, for the loss that optimizer_epsilon_units names
  optimizer_epsilon_units: EpsilonUnits = 'mean_loss'  # the loss epsilon is
  # stated for: this package's batch mean, or Nature's batch sum (optimizers.py)
  huber_delta: float = setting(1.0, '> 0')  # Huber loss: TD errors clipped here
  reward_clip: float = setting(1.0, '>= 0 (0 = off)')  # rewards in [-clip, clip]
  target_update_period: int = setting(10_000, '>= 1')  # applied updates between
  # target refreshes (agent steps: x batch_size / replay.samples_per_insert)
  steps_per_closure: int = setting(4, '>= 1')  # updates in one scheduled closure
  replica_sync_period: int = setting(1, '>= 1')  # updates between refreshes of
  # the learner's replica of the online network (Gorila's learner sync)
  prefetch_replica: bool = False  # read each refresh during the step before
  # (overlapping its gradient, before its apply: the replica one update older)
  max_staleness: int = setting(100, '>= 0 (0 = off)')  # discard gradients from
  # parameters more updates old (Gorila); see staleness_per_learner
  staleness_per_learner: float = setting(
      4.0, 'in [1, 1000]: updates per learner in the cluster')  # the threshold
  # is max(max_staleness, this x learners)
  loss_outlier_k: float = setting(5.0, '>= 0 (0 = off)')  # discard a gradient
  # whose loss > mean + k std of the learner's recent losses (Gorila)
  loss_stats_decay: float = setting(0.99, 'in [0, 1)')  # weight of the past there
  loss_outlier_warmup: int = setting(100, '>= 0')  # losses before any outlier
  n_step: int = setting(1, '>= 1', at_most=(
      MAX_N_STEP, 'each replay item holds frame_stack + n frames'))  # paper: 1
  double_dqn: bool = False  # double-DQN targets (option); the paper: off
  fused_update: bool = True  # TF's fused, locked update kernels; false: the
  # written-out rules, which can lose updates (or make centered RMSProp NaN)
  # with several learners
  transfer_dtype: TransferDtype = 'float32'  # what replica reads and gradients
  # cross the network as ('bfloat16': half the bytes); the paper: float32
  xla: bool = False  # compile each step's forward and backward pass with XLA


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """The evaluator task (paper protocol: 30 no-ops, epsilon 0.05, 18,000 frames)."""

  episodes: int = setting(30, '>= 1', at_most=(
      MAX_EVAL_EPISODES, 'an episode can last eval.max_episode_frames; the paper '
      'used 30'))  # episodes per evaluation
  epsilon: float = setting(0.05, 'in [0, 1]')
  noop_max: int = setting(30, '>= 0')  # random no-ops at the start, at most
  max_episode_frames: int = setting(18_000, '>= 1')  # episode cap, frames (5 min)
  parallel_envs: int = setting(5, at_most=(
      MAX_EVAL_PARALLEL_ENVS, 'each is an emulator in the evaluator'))  # envs
  # stepped together, the episodes split evenly between them
  quick_episodes: int = setting(0, '>= 0 (0 = off)')  # episodes of the
  # periodic evaluations when > 0 (a score on record sooner, at a third of
  # the CPU for 10 of 30); the final evaluation and the one that confirms
  # run.stop_at_eval_return always play eval.episodes
  every_s: float = setting(60.0, '> 0')  # seconds between evaluations
  cpu_cores: float = setting(0.2, '>= 0 (0 = no budget)')  # the evaluator's CPU
  # budget, cores (it sleeps to stay within it, at a lower priority)
  record_frames: int = setting(300, '>= 0 (0 = none)', at_most=(
      MAX_RECORD_FRAMES, 'the pictures are held in memory and written as one '
      'GIF into TensorBoard: 100 KB each in colour'))  # frames of one episode
  record_view: PictureView = 'screen'  # the game in colour, or 'agent': 84x84 gray


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """Budget, seeds and the chief's periodic work."""

  max_frames: int = setting(10_000_000, '>= 1')  # frame budget of all actors
  stop_at_eval_return: Optional[float] = None  # training ends, done,
  # once an evaluation scores at least this; its checkpoint is exported as a
  # SavedModel in <run_dir>/policy (needs the evaluator)
  seed: int = setting(0, '>= 0')
  checkpoint_every_s: float = setting(300.0, '> 0')  # seconds between checkpoints
  keep_checkpoints: int = setting(3, '>= 1', at_most=(
      MAX_KEEP_CHECKPOINTS, 'each is a full copy of the network and optimizer '
      'slots on disk'))  # newest checkpoints kept
  summary_every_s: float = setting(10.0, '> 0')  # seconds between summaries
  publish_every_s: float = setting(2.0, '> 0')  # seconds between pushes to actors
  max_closures_in_flight: int = setting(8, '>= 1', at_most=(
      MAX_CLOSURES_IN_FLIGHT, "each holds a batch on its worker; more only wait "
      "in the coordinator's queue"))  # scheduled learner closures not finished
  connect_timeout_s: float = setting(120.0, '> 0')  # seconds to wait for the tasks
  bundle_timeout_s: float = setting(10.0, '>= 2 (seconds)')  # a bundle silent
  # this long is unresponsive: training goes on without it
  learner_stall_s: float = 60.0  # a bundle whose learner sampled nothing this
  # long while the chief published restarts itself (bundle.LearnerWatch); 0 = never
  min_free_disk_mb: int = setting(100, '>= 0', at_most=(
      MAX_FREE_DISK_MB, '1 TiB; a run writes far less'))  # free space to start
  intra_op_threads: int = setting(
      0, 'in [0, 256] (0 = every core)')  # threads per task's ops (the local
  # launcher: cores / tasks)
  lease_timeout_s: float = setting(60.0, 'in [2, 3600] seconds (a dead chief\'s '
                                   'run directory stays locked that long; a '
                                   'live one renews every few seconds)')
  # a lease not renewed this long belongs to a dead chief (lease.py)


@dataclasses.dataclass(frozen=True)
class LaunchConfig:
  """Cluster shape used by the local launcher (a TF_CONFIG overrides it)."""

  num_ps: int = setting(2, '>= 1')  # parameter-server tasks holding the variables
  num_workers: int = setting(2, '>= 1')  # bundles: learner + replay + actors each
  evaluator: bool = False  # also start an evaluator task
  min_shard_bytes: int = setting(256 << 10, '>= 1', at_most=(
      MAX_SHARD_BYTES, 'a variable kept whole travels in one gRPC message, at '
      'most 2 GiB'))  # variables larger than this are split across the ps


@dataclasses.dataclass(frozen=True)
class HealthConfig:
  """The chief's check that the Q-network is alive (gorila_tf/agent/health.py)."""

  every_updates: int = setting(1000, '>= 1')  # updates between network probes
  probe_states: int = setting(256, '>= 2', at_most=(
      MAX_PROBE_STATES, 'the chief keeps them in memory and runs the network on '
      'all of them at each probe: 115 MB of Atari states'))  # real states probed
  min_q_spread: float = setting(1e-4, 'in [0, 1) (0 = never collapsed)')  # a
  # probe is flat when Q varies across states by less than this share of |Q|
  collapse_probes: int = setting(2, '>= 1', at_most=(
      MAX_COLLAPSE_PROBES, 'a dead network never recovers; more only lets it '
      'burn longer'))  # flat probes in a row that make a collapse
  dead_share_warn: float = setting(0.9, 'in (0, 1]')  # warn at this dead share
  stop_on_collapse: bool = True  # a collapse stops the run (exit status 5)


@dataclasses.dataclass(frozen=True)
class FaultsConfig:
  """Fault injection (runtime/faults.py): test-only, off in every preset."""

  slow_worker: int = -1  # the learner on this worker (-1: none) waits
  slow_ms: int = setting(0, '>= 0')  # this long for every batch, milliseconds
  nan_after_updates: int = setting(0, '>= 0 (0 = off)')  # losses NaN from here
  kill_units_at_update: int = setting(0, '>= 0 (0 = off)')  # every hidden unit
  # killed here (biases -1000): a planted collapse
  end_replay_after_batches: int = setting(0, '>= 0 (0 = off)')  # every
  # learner's replay stream ends after this many batches (as one cut by a fault)


@dataclasses.dataclass(frozen=True)
class GorilaConfig:
  """Everything one run needs; saved as config.json in the run directory."""

  name: str = 'custom'  # preset name, used in run-directory names
  env: EnvConfig = EnvConfig()
  network: NetworkConfig = NetworkConfig()
  actor: ActorConfig = ActorConfig()
  replay: ReplayConfig = ReplayConfig()
  learner: LearnerConfig = LearnerConfig()
  eval: EvalConfig = EvalConfig()
  run: RunConfig = RunConfig()
  launch: LaunchConfig = LaunchConfig()
  health: HealthConfig = HealthConfig()
  faults: FaultsConfig = FaultsConfig()  # test-only hooks


_SECTIONS = tuple(f.name for f in dataclasses.fields(GorilaConfig) if f.name != 'name')


def available_presets() -> list[str]:
  """Names of the preset modules shipped in `configs/`."""
  package = importlib.import_module('gorila_tf.configs')
  return sorted(m.name for m in pkgutil.iter_modules(package.__path__)
                if not m.name.startswith('_'))


def load_preset(name: str) -> GorilaConfig:
  """Returns the preset `name` from `configs/`."""
  presets = available_presets()
  if name not in presets:
    raise ConfigError(f'unknown config preset {name!r}; allowed: '
                      f'{", ".join(presets)}{_did_you_mean(name, presets)}')
  module = importlib.import_module(f'gorila_tf.configs.{name}')
  config = module.get_config()
  return dataclasses.replace(config, name=name)


def apply_overrides(config: GorilaConfig,
                    overrides: Sequence[str]) -> GorilaConfig:
  """Applies `section.field=value` strings, converting values to field types."""
  for item in overrides:
    key, sep, text = item.partition('=')
    if not sep:
      raise ConfigError(f'override {item!r} is not of the form section.field=value')
    section_name, _, field_name = key.strip().partition('.')
    if section_name not in _SECTIONS:
      raise ConfigError(f'unknown config section {section_name!r} in {item!r}; '
                        f'allowed: {", ".join(_SECTIONS)}'
                        f'{_did_you_mean(section_name, _SECTIONS)}')
    section = getattr(config, section_name)
    fields = {f.name: f for f in dataclasses.fields(section)}
    if field_name not in fields:
      allowed = [f'{section_name}.{n}' for n in fields]
      raise ConfigError(f'unknown config key {key.strip()!r}; allowed: '
                        f'{", ".join(allowed)}{_did_you_mean(key.strip(), allowed)}')
    hints = typing.get_type_hints(type(section))
    value = _parse_value(text.strip(), hints[field_name], key.strip())
    section = dataclasses.replace(section, **{field_name: value})
    config = dataclasses.replace(config, **{section_name: section})
  return config


def _optional_of(hint: Any) -> Any:
  """X for Optional[X], else None."""
  args = typing.get_args(hint)
  if typing.get_origin(hint) is typing.Union and type(None) in args:
    return next(a for a in args if a is not type(None))
  return None


NONE_WORDS = ('none', 'off', 'null')  # what turns an optional setting off


def _parse_value(text: str, hint: Any, key: str, shown: Any = None) -> Any:
  """Converts override text to the field's type, or raises ConfigError
  (saying the type `shown`, by default the field's)."""
  inner = _optional_of(hint)
  if inner is not None:
    if text.lower() in NONE_WORDS:
      return None
    return _parse_value(text, inner, key, shown=hint)
  if typing.get_origin(hint) is Literal:
    check_choice(key, text, hint)
    return text
  try:
    if hint is bool:
      lowered = text.lower()
      if lowered in ('1', 'true', 'yes', 'on'):
        return True
      if lowered in ('0', 'false', 'no', 'off'):
        return False
      raise ValueError
    if hint is int:
      number = float(text.replace('_', ''))
      if not number.is_integer():
        raise ValueError
      return int(number)
    if hint is float:
      value = float(text)
      if not math.isfinite(value):  # inf passes '> 0' and breaks the run
        raise ValueError
      return value
    if hint is str:
      return text
    if typing.get_origin(hint) is tuple:
      parts = [p for p in text.replace(' ', '').split(',') if p]
      return tuple(int(p) for p in parts)
  except ValueError:
    raise ConfigError(f'{key}={text!r} is not a valid '
                      f'{_type_name(shown or hint)}') from None
  raise ConfigError(f'{key} has unsupported type {hint}')


def _type_name(hint: Any) -> str:
  inner = _optional_of(hint)
  if inner is not None:
    return f'{_type_name(inner)} or none'
  if typing.get_origin(hint) is tuple:
    return 'comma-separated list of integers'
  return {bool: 'boolean (true/false)', int: 'integer', float: 'finite number',
          str: 'string'}.get(hint, str(hint))


def _did_you_mean(name: str, allowed: Sequence[str]) -> str:
  close = difflib.get_close_matches(name, allowed, n=3, cutoff=0.6)
  return f' (did you mean {" or ".join(close)}?)' if close else ''


def validate(config: GorilaConfig) -> GorilaConfig:
  """Checks value ranges; raises ConfigError naming the first bad value."""
  for key, value, choices in _choice_fields(config):
    check_choice(key, value, choices)
  for key, ok, allowed in _relations(config) + _declared_ranges(config):
    if not ok:
      section, _, field_name = key.partition('.')
      value = getattr(getattr(config, section), field_name)
      raise ConfigError(f'{key}={value!r} is out of range; allowed: {allowed}')
  return config


_RANGE = re.compile(r'(>=|>|<=) (-?[\d.e+-]+)|in ([\[(])(-?[\d.e+-]+), '
                    r'(-?[\d.e+-]+)([\])])')


def in_range(value: float, allowed: str) -> bool:
  """Whether `value` is in `allowed` ('>= 1', 'in [0, 1)', ... + a note).

  NaN and the infinities are in no range: a learning rate of inf passes
  '> 0' but makes the first update non-finite.
  """
  m = _RANGE.match(allowed)
  if m is None:
    raise ValueError(f'not a range: {allowed!r}')
  if not math.isfinite(value):
    return False
  if m.group(1):
    bound = float(m.group(2))
    return {'>=': value >= bound, '>': value > bound, '<=': value <= bound}[m.group(1)]
  low, high = float(m.group(4)), float(m.group(5))
  above = value >= low if m.group(3) == '[' else value > low
  below = value <= high if m.group(6) == ']' else value < high
  return above and below


def _declared_ranges(c: GorilaConfig) -> list[tuple[str, bool, str]]:
  """(key, within its range, allowed) of every field declared with `setting`."""
  rows = []
  for section_name in _SECTIONS:
    section = getattr(c, section_name)
    hints = typing.get_type_hints(type(section))
    for f in dataclasses.fields(section):
      value = getattr(section, f.name)
      key = f'{section_name}.{f.name}'
      if value is None:  # an optional setting, off
        if _optional_of(hints[f.name]) is None:
          rows.append((key, False, 'a value (this setting cannot be none)'))
        continue
      if isinstance(value, float) and not math.isfinite(value):
        rows.append((key, False, 'a finite number'))
        continue
      if f.metadata.get('allowed'):
        rows.append((key, in_range(value, f.metadata['allowed']),
                     f.metadata['allowed']))
      if f.metadata.get('at_most'):
        bound, why = f.metadata['at_most']
        rows.append((key, value <= bound, f'<= {bound} ({why})'))
  return rows


def max_replay_capacity(config: GorilaConfig) -> int:
  """The largest replay.capacity whose memory estimate fits MAX_REPLAY_GB."""
  kind = 'atari' if config.env.id.startswith('ALE/') else 'vector'
  return (MAX_REPLAY_GB << 30) // REPLAY_BYTES_PER_TRANSITION[kind]


def _relations(c: GorilaConfig) -> list[tuple[str, bool, str]]:
  """Ranges that depend on other fields (checked before the declared ones)."""
  tasks = c.launch.num_ps + c.launch.num_workers + 1 + int(c.launch.evaluator)
  capacity = max_replay_capacity(c)
  kind = 'atari' if c.env.id.startswith('ALE/') else 'vector'
  return [
      ('network.mlp_layers', all(n >= 1 for n in c.network.mlp_layers),
       'positive layer sizes'),
      ('network.mlp_layers', len(c.network.mlp_layers) <= MAX_LAYERS and all(
          n <= MAX_LAYER_UNITS for n in c.network.mlp_layers),
       f'at most {MAX_LAYERS} layers of at most {MAX_LAYER_UNITS} units (the '
       'weights are sent to every actor at each publication)'),
      ('learner.learning_rate_end_update', c.learner.learning_rate_end is None
       or c.learner.learning_rate_end_update > c.learner.learning_rate_warmup,
       f'> learner.learning_rate_warmup={c.learner.learning_rate_warmup} '
       '(the fall to learner.learning_rate_end starts after the warm-up)'),
      ('replay.min_size', 1 <= c.replay.min_size <= c.replay.capacity,
       f'in [1, replay.capacity={c.replay.capacity}]'),
      ('replay.capacity', c.replay.capacity <= capacity,
       f'<= {capacity:,} for this game (about '
       f'{REPLAY_BYTES_PER_TRANSITION[kind]:,} bytes of worker memory per '
       f'transition; at most {MAX_REPLAY_GB} GB of replay per bundle)'),
      ('learner.batch_size', 1 <= c.learner.batch_size <= c.replay.capacity,
       f'in [1, replay.capacity={c.replay.capacity}]'),
      ('eval.parallel_envs', 1 <= c.eval.parallel_envs <= c.eval.episodes,
       f'in [1, eval.episodes={c.eval.episodes}]'),
      ('eval.quick_episodes', c.eval.quick_episodes == 0 or
       c.eval.parallel_envs <= c.eval.quick_episodes <= c.eval.episodes,
       f'0 (off) or in [eval.parallel_envs={c.eval.parallel_envs}, '
       f'eval.episodes={c.eval.episodes}]'),
      ('run.learner_stall_s',
       c.run.learner_stall_s == 0 or c.run.learner_stall_s >= 10,
       '0 (never) or >= 10 (seconds)'),
      ('launch.num_workers', tasks <= MAX_TASKS,
       f'at most {MAX_TASKS} tasks in all, ps + workers + chief + evaluator = '
       f'{tasks} (each task is a process of ~1 GB, with an address of its own '
       'among the emulated hosts\' 253)'),
  ]


def _choice_fields(config: GorilaConfig):
  """(section.field, value, Literal type) of every closed-set field."""
  for section_name in _SECTIONS:
    section = getattr(config, section_name)
    for name, hint in typing.get_type_hints(type(section)).items():
      if typing.get_origin(hint) is Literal:
        yield f'{section_name}.{name}', getattr(section, name), hint


def resolve(preset: str, overrides: Sequence[str] = ()) -> GorilaConfig:
  """Preset + overrides, validated. The one way entry points build a config."""
  return validate(apply_overrides(load_preset(preset), overrides))


def to_dict(config: GorilaConfig) -> dict[str, Any]:
  return dataclasses.asdict(config)


def to_json(config: GorilaConfig) -> str:
  return json.dumps(to_dict(config), indent=2, sort_keys=True)


def from_dict(data: dict[str, Any]) -> GorilaConfig:
  """Inverse of `to_dict` (used to read config.json back from a run dir)."""
  data = _moved_keys(data)
  sections = {}
  for f in dataclasses.fields(GorilaConfig):
    if f.name == 'name':
      continue
    cls = typing.get_type_hints(GorilaConfig)[f.name]
    values = dict(data.get(f.name, {}))
    hints = typing.get_type_hints(cls)
    for key, hint in hints.items():
      if typing.get_origin(hint) is tuple and key in values:
        values[key] = tuple(values[key])
    unknown = set(values) - set(hints)
    if unknown:
      raise ConfigError(f'unknown keys {sorted(unknown)} in section {f.name!r}')
    for key, value in values.items():
      values[key] = _typed(f'{f.name}.{key}', value, hints[key])
    sections[f.name] = cls(**values)
  return GorilaConfig(name=data.get('name', 'custom'), **sections)


def _typed(key: str, value: Any, hint: Any, shown: Any = None) -> Any:
  """`value` read from JSON as the field's type; ConfigError naming it (and
  the type `shown`, by default the field's) if it is not one (a config.json
  edited by hand)."""
  inner = _optional_of(hint)
  if inner is not None:
    return None if value is None else _typed(key, value, inner, shown=hint)
  ok = {bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        str: lambda v: isinstance(v, str)}
  if typing.get_origin(hint) is Literal:
    fits = isinstance(value, str)
  elif typing.get_origin(hint) is tuple:
    fits = isinstance(value, (list, tuple)) and all(ok[int](v) for v in value)
  else:
    fits = hint in ok and ok[hint](value)
  if not fits:
    raise ConfigError(f'{key}={value!r} in config.json is not a valid '
                      f'{_type_name(shown or hint)}')
  return float(value) if hint is float else value


# Keys that config.json files written by earlier versions hold elsewhere.
MOVED_KEYS = {
    ('learner', 'debug_slow_worker'): ('faults', 'slow_worker'),
    ('learner', 'debug_slow_ms'): ('faults', 'slow_ms'),
    ('learner', 'debug_nan_after_updates'): ('faults', 'nan_after_updates'),
}


def _moved_keys(data: dict[str, Any]) -> dict[str, Any]:
  """A copy of `data` with MOVED_KEYS in their current places."""
  data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
  for (section, key), (new_section, new_key) in MOVED_KEYS.items():
    if key in data.get(section, {}):
      data.setdefault(new_section, {})[new_key] = data[section].pop(key)
  return data
