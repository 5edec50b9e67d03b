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
import pkgutil
import typing
from typing import Any, Literal, Sequence


class ConfigError(ValueError):
  """A preset, override or value that is not allowed (one-line message)."""


class NumericalError(RuntimeError):
  """A NaN or infinite loss, gradient or parameter: the run stops."""


# The closed sets of values, one source each (see the module docstring).
NetworkKind = Literal['nature_cnn', 'mlp']  # 3 convs + 512 FC; fully connected
OptimizerName = Literal['rmsprop', 'adam']  # centered RMSProp (Nature DQN); Adam
ReplayMode = Literal['local', 'global']  # a learner samples its own bundle; all
EpsilonSchedule = Literal['linear', 'per_actor']  # paper; Ape-X's fixed per actor
EpsilonUnits = Literal['mean_loss', 'summed_loss']  # optimizer_epsilon for the
# batch-mean loss (this package's); for the batch-summed loss (Nature DQN's code)
TransferDtype = Literal['float32', 'bfloat16']  # what crosses the network
NetworkInit = Literal['torch', 'glorot']  # see NetworkConfig.init
PictureView = Literal['screen', 'agent']  # the emulator's colour screen; the 84x84 input


def check_choice(key: str, value: Any, choices: Any) -> None:
  """Raises ConfigError unless `value` is one of the `Literal` type `choices`."""
  allowed = typing.get_args(choices)
  if value not in allowed:
    raise ConfigError(f'{key}={value!r} is not allowed; allowed: '
                      f'{", ".join(repr(a) for a in allowed)}')


@dataclasses.dataclass(frozen=True)
class EnvConfig:
  """Which game and how observations and rewards are shaped."""

  id: str = 'ALE/Pong-v5'  # gymnasium id: 'ALE/<Game>-v5' or 'CartPole-v1'
  frameskip: int = 4  # frames per agent step, max-pooled over the last two (Atari)
  frame_stack: int = 4  # frames stacked into one agent state
  noop_max: int = 30  # up to this many random no-op steps after each reset (Atari)
  repeat_action_probability: float = 0.0  # sticky actions; ALE v5 defaults to 0.25, the paper used 0
  terminal_on_life_loss: bool = True  # life loss ends the TD target, not the episode (Atari)
  max_episode_frames: int = 108_000  # training episodes are truncated here, frames (30 min)
  full_action_space: bool = False  # False: the game's minimal action set


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
  """The Q-network architecture."""

  kind: NetworkKind = 'nature_cnn'  # 'nature_cnn' (3 convs + 512 FC) or 'mlp'
  mlp_layers: tuple[int, ...] = (64, 64)  # hidden units per layer, used by 'mlp'
  dueling: bool = False  # dueling value/advantage head (Wang et al. 2016); paper: off
  init: NetworkInit = 'glorot'  # 'torch': weights and biases uniform in
  # +-1/sqrt(fan_in), Torch7's default, which Nature DQN's code used (the
  # paper's); 'glorot': Glorot-uniform weights, zero biases (Keras' default)


@dataclasses.dataclass(frozen=True)
class ActorConfig:
  """How each bundle's actors act and report."""

  envs_per_bundle: int = 4  # actors per bundle, stepped as one vector env
  epsilon_start: float = 1.0  # exploration at frame 0
  epsilon_end: float = 0.1  # exploration after the decay
  epsilon_decay_frames: int = 4_000_000  # linear decay length, frames (1M agent steps)
  epsilon_schedule: EpsilonSchedule = 'linear'  # 'linear': all actors decay together (paper);
  # 'per_actor': fixed eps^(1 + alpha i / (N - 1)) for actor i of N (Ape-X option)
  per_actor_epsilon: float = 0.4  # eps of the per_actor schedule
  per_actor_alpha: float = 7.0  # alpha of the per_actor schedule
  param_refresh_steps: int = 100  # vector steps between parameter pulls from the ps
  stats_interval_s: float = 1.0  # seconds between progress reports to the chief


@dataclasses.dataclass(frozen=True)
class ReplayConfig:
  """Each bundle's Reverb replay table."""

  capacity: int = 1_000_000  # transitions kept per bundle (FIFO eviction)
  min_size: int = 50_000  # transitions per bundle before its learner samples
  samples_per_insert: float = 8.0  # sampled/inserted transitions; 0 = free-running
  mode: ReplayMode = 'local'  # 'local': a learner samples its own bundle (paper's
  # bundled mode); 'global': every learner samples all bundles' tables
  chunk_length: int = 16  # rows Reverb compresses together (memory vs. latency)
  prioritized: bool = False  # prioritized replay (Schaul et al. 2016, option)
  priority_exponent: float = 0.6  # alpha: sampling probability ~ priority^alpha
  importance_exponent: float = 0.4  # beta of the importance-sampling weights


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
  """The DQN update each learner closure runs."""

  batch_size: int = 32  # transitions per gradient update
  discount: float = 0.99  # gamma
  optimizer: OptimizerName = 'rmsprop'  # 'rmsprop' (centered, as Nature DQN) or 'adam'
  learning_rate: float = 0.00025  # step size of the ps update rule
  rmsprop_rho: float = 0.95  # squared-gradient decay
  optimizer_epsilon: float = 0.01  # RMSProp's (inside the square root: units of
  # gradient^2) or Adam's (added to sqrt(v): units of gradient), for the loss
  # that `optimizer_epsilon_units` names
  optimizer_epsilon_units: EpsilonUnits = 'mean_loss'  # 'mean_loss': used as is
  # with this package's loss (dqn.dqn_loss: mean over the batch); 'summed_loss':
  # stated for a loss summed over the batch, as Nature DQN's code, and scaled to
  # the mean by optimizers.mean_loss_epsilon (RMSProp / batch_size^2, Adam /
  # batch_size): the same update as the summed loss, whatever learner.batch_size.
  # The default keeps the meaning of config.json files written before this
  # field; the atari presets set 'summed_loss' (Nature's step)
  huber_delta: float = 1.0  # Huber loss = error clipping to [-delta, delta]
  reward_clip: float = 1.0  # rewards clipped to [-clip, clip] for targets; 0 = off
  target_update_period: int = 10_000  # updates (applied to the ps, all learners
  # together) between target-network refreshes; in agent steps: this x
  # batch_size / replay.samples_per_insert (the default: 10,000 x 32 / 8 = 40k;
  # the atari presets: 2,500 x 32 / 8 = 10k, as Nature's code)
  steps_per_closure: int = 4  # updates packed into one scheduled closure
  replica_sync_period: int = 1  # updates between refreshes of the learner's
  # replica of the online network from the ps (Gorila's learner sync)
  max_staleness: int = 100  # gradients from parameters more updates old than
  # this are discarded (Gorila); 0 = keep all. With many learners the
  # threshold grows: max(max_staleness, staleness_per_learner x learners)
  staleness_per_learner: float = 4.0  # a healthy gradient is ~(learners - 1)
  # updates old (docs/scaling.md measures it); a learner this many times
  # slower than the rest has its gradients discarded
  loss_outlier_k: float = 5.0  # discard gradients whose loss > mean + k std of
  # this learner's recent losses (Gorila); 0 = keep all
  loss_stats_decay: float = 0.99  # weight of the past in those statistics
  loss_outlier_warmup: int = 100  # losses seen before any is called an outlier
  n_step: int = 1  # n-step returns (option); the paper: 1
  double_dqn: bool = False  # double-DQN targets (option); the paper: off
  fused_update: bool = True  # apply the update rule with TF's fused kernels
  # (ResourceApplyCenteredRMSProp / ResourceApplyAdam, locked): the same
  # arithmetic in one pass instead of ~8; false: the written-out rules, which
  # can lose updates when several learners apply at once (test_concurrency)
  transfer_dtype: TransferDtype = 'float32'  # 'bfloat16' (option): replica
  # reads and gradients cross the network in bfloat16 (half the bytes; the ps
  # keeps float32 variables and slots); the paper: float32
  xla: bool = False  # compile each step's forward and backward pass with XLA
  # (option; the same maths, another kernel library)


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """The evaluator task (paper protocol: 30 no-ops, epsilon 0.05, 18,000 frames)."""

  episodes: int = 30  # episodes per evaluation
  epsilon: float = 0.05
  noop_max: int = 30  # up to this many random no-ops at the start (Atari)
  max_episode_frames: int = 18_000  # episode cap, frames (5 minutes)
  parallel_envs: int = 5  # envs stepped together; episodes split evenly between them
  every_s: float = 60.0  # seconds between evaluations of the newest checkpoint
  cpu_cores: float = 0.2  # the evaluator's CPU budget, in cores (it sleeps to
  # stay within it, at a lower priority), so that training keeps its pace as
  # episodes grow longer; 0 = no budget
  record_frames: int = 300  # frames of one evaluation episode shown in TensorBoard
  record_view: PictureView = 'screen'  # 'screen': the game in colour (Atari: a
  # second emulator replays env 0's episode); 'agent': the 84x84 gray input


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """Budget, seeds and the chief's periodic work."""

  max_frames: int = 10_000_000  # frame budget over all actors; the run stops there
  seed: int = 0
  checkpoint_every_s: float = 300.0  # seconds between checkpoints
  keep_checkpoints: int = 3  # newest checkpoints kept on disk
  summary_every_s: float = 10.0  # seconds between TensorBoard/progress writes
  publish_every_s: float = 2.0  # seconds between parameter pushes to the actors
  max_closures_in_flight: int = 8  # scheduled learner closures not yet finished
  connect_timeout_s: float = 120.0  # chief waits this long for every task to be up
  bundle_timeout_s: float = 10.0  # a bundle silent this long is unresponsive:
  # training goes on without it, its closures are not waited for
  learner_stall_s: float = 60.0  # a bundle whose learner sampled nothing this
  # long (its own running time) while the chief answered and published
  # restarts itself: a TF call cut by a network fault can stay unanswered for
  # good (bundle.LearnerWatch); 0 = never
  min_free_disk_mb: int = 100  # refuse to start with less free space in the run dir
  intra_op_threads: int = 0  # threads each task's TensorFlow ops may split
  # across; 0 = TensorFlow's default, every core (right for a task per
  # machine). The local launcher sets cores / tasks (1 on 2 cores for 5
  # tasks): 5 processes each splitting ops over both cores cost 25% of the
  # throughput in thread switches (README, where the time goes)
  lease_timeout_s: float = 60.0  # a run dir's lease whose heartbeat has not
  # advanced this long belongs to a dead chief and is taken over (lease.py)


@dataclasses.dataclass(frozen=True)
class LaunchConfig:
  """Cluster shape used by the local launcher (a TF_CONFIG overrides it)."""

  num_ps: int = 2  # parameter-server tasks holding the sharded variables
  num_workers: int = 2  # bundles: learner + replay + actors each
  evaluator: bool = False  # also start an evaluator task
  min_shard_bytes: int = 256 << 10  # variables larger than this are split across ps


@dataclasses.dataclass(frozen=True)
class HealthConfig:
  """The chief's check that the Q-network is alive (gorila_tf/agent/health.py)."""

  every_updates: int = 1000  # updates between probes of the online network
  probe_states: int = 256  # real states (random play, fixed per run) probed
  min_q_spread: float = 1e-4  # collapsed: Q varies across the probe states by
  # less than this share of its mean |Q|; 0 = never called collapsed
  collapse_probes: int = 2  # collapsed probes in a row before it is a collapse
  dead_share_warn: float = 0.9  # warn once a layer has this share of dead units
  stop_on_collapse: bool = True  # a collapse stops the run (exit status 5)


@dataclasses.dataclass(frozen=True)
class FaultsConfig:
  """Fault injection: test-only hooks, off by default and in every preset.

  The end-to-end tests set these to show what the system does with a slow
  learner or a NaN loss; a real run never should.
  """

  slow_worker: int = -1  # the learner on this worker (-1: none) waits
  slow_ms: int = 0  # this long for every batch, milliseconds
  nan_after_updates: int = 0  # losses are NaN from this update on; 0 = off
  kill_units_at_update: int = 0  # at this update the chief sets the first
  # hidden layer's biases to -1000: every unit dead, a planted collapse; 0 = off


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


def _parse_value(text: str, hint: Any, key: str) -> Any:
  """Converts override text to the field's type, or raises ConfigError."""
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
      return float(text)
    if hint is str:
      return text
    if typing.get_origin(hint) is tuple:
      parts = [p for p in text.replace(' ', '').split(',') if p]
      return tuple(int(p) for p in parts)
  except ValueError:
    raise ConfigError(f'{key}={text!r} is not a valid {_type_name(hint)}') from None
  raise ConfigError(f'{key} has unsupported type {hint}')


def _type_name(hint: Any) -> str:
  if typing.get_origin(hint) is tuple:
    return 'comma-separated list of integers'
  return {bool: 'boolean (true/false)', int: 'integer', float: 'number',
          str: 'string'}.get(hint, str(hint))


def _did_you_mean(name: str, allowed: Sequence[str]) -> str:
  close = difflib.get_close_matches(name, allowed, n=3, cutoff=0.6)
  return f' (did you mean {" or ".join(close)}?)' if close else ''


def validate(config: GorilaConfig) -> GorilaConfig:
  """Checks value ranges; raises ConfigError naming the first bad value."""
  for key, value, choices in _choice_fields(config):
    check_choice(key, value, choices)
  c = config
  checks = [
      ('env.frameskip', c.env.frameskip >= 1, '>= 1'),
      ('env.frame_stack', c.env.frame_stack >= 1, '>= 1'),
      ('env.noop_max', c.env.noop_max >= 0, '>= 0'),
      ('env.repeat_action_probability', 0.0 <= c.env.repeat_action_probability <= 1.0, 'in [0, 1]'),
      ('env.max_episode_frames', c.env.max_episode_frames >= 1, '>= 1'),
      ('network.mlp_layers', all(n >= 1 for n in c.network.mlp_layers), 'positive layer sizes'),
      ('actor.envs_per_bundle', c.actor.envs_per_bundle >= 1, '>= 1'),
      ('actor.epsilon_start', 0.0 <= c.actor.epsilon_start <= 1.0, 'in [0, 1]'),
      ('actor.epsilon_end', 0.0 <= c.actor.epsilon_end <= 1.0, 'in [0, 1]'),
      ('actor.epsilon_decay_frames', c.actor.epsilon_decay_frames >= 0, '>= 0'),
      ('actor.per_actor_epsilon', 0.0 <= c.actor.per_actor_epsilon <= 1.0, 'in [0, 1]'),
      ('actor.per_actor_alpha', c.actor.per_actor_alpha >= 0, '>= 0'),
      ('actor.param_refresh_steps', c.actor.param_refresh_steps >= 1, '>= 1'),
      ('actor.stats_interval_s', c.actor.stats_interval_s > 0, '> 0'),
      ('replay.capacity', c.replay.capacity >= 1, '>= 1'),
      ('replay.min_size', 1 <= c.replay.min_size <= c.replay.capacity,
       f'in [1, replay.capacity={c.replay.capacity}]'),
      ('replay.samples_per_insert', c.replay.samples_per_insert >= 0, '>= 0 (0 = free-running)'),
      ('replay.chunk_length', c.replay.chunk_length >= 1, '>= 1'),
      ('replay.priority_exponent', c.replay.priority_exponent >= 0, '>= 0'),
      ('replay.importance_exponent', 0.0 <= c.replay.importance_exponent <= 1.0,
       'in [0, 1]'),
      ('learner.batch_size', 1 <= c.learner.batch_size <= c.replay.capacity,
       f'in [1, replay.capacity={c.replay.capacity}]'),
      ('learner.discount', 0.0 <= c.learner.discount <= 1.0, 'in [0, 1]'),
      ('learner.learning_rate', c.learner.learning_rate > 0, '> 0'),
      ('learner.rmsprop_rho', 0.0 <= c.learner.rmsprop_rho < 1.0, 'in [0, 1)'),
      ('learner.optimizer_epsilon', c.learner.optimizer_epsilon > 0, '> 0'),
      ('learner.huber_delta', c.learner.huber_delta > 0, '> 0'),
      ('learner.reward_clip', c.learner.reward_clip >= 0, '>= 0 (0 = off)'),
      ('learner.target_update_period', c.learner.target_update_period >= 1, '>= 1'),
      ('learner.steps_per_closure', c.learner.steps_per_closure >= 1, '>= 1'),
      ('learner.replica_sync_period', c.learner.replica_sync_period >= 1, '>= 1'),
      ('learner.max_staleness', c.learner.max_staleness >= 0, '>= 0 (0 = off)'),
      ('learner.staleness_per_learner', 1 <= c.learner.staleness_per_learner <= 1000,
       'in [1, 1000]: updates per learner in the cluster'),
      ('learner.loss_outlier_k', c.learner.loss_outlier_k >= 0, '>= 0 (0 = off)'),
      ('learner.loss_stats_decay', 0.0 <= c.learner.loss_stats_decay < 1.0, 'in [0, 1)'),
      ('learner.loss_outlier_warmup', c.learner.loss_outlier_warmup >= 0, '>= 0'),
      ('learner.n_step', c.learner.n_step >= 1, '>= 1'),
      ('eval.episodes', c.eval.episodes >= 1, '>= 1'),
      ('eval.epsilon', 0.0 <= c.eval.epsilon <= 1.0, 'in [0, 1]'),
      ('eval.noop_max', c.eval.noop_max >= 0, '>= 0'),
      ('eval.max_episode_frames', c.eval.max_episode_frames >= 1, '>= 1'),
      ('eval.parallel_envs', 1 <= c.eval.parallel_envs <= c.eval.episodes,
       f'in [1, eval.episodes={c.eval.episodes}]'),
      ('eval.every_s', c.eval.every_s > 0, '> 0'),
      ('eval.cpu_cores', c.eval.cpu_cores >= 0, '>= 0 (0 = no budget)'),
      ('eval.record_frames', c.eval.record_frames >= 0, '>= 0 (0 = none)'),
      ('run.max_frames', c.run.max_frames >= 1, '>= 1'),
      ('run.seed', c.run.seed >= 0, '>= 0'),
      ('run.checkpoint_every_s', c.run.checkpoint_every_s > 0, '> 0'),
      ('run.keep_checkpoints', c.run.keep_checkpoints >= 1, '>= 1'),
      ('run.summary_every_s', c.run.summary_every_s > 0, '> 0'),
      ('run.publish_every_s', c.run.publish_every_s > 0, '> 0'),
      ('run.max_closures_in_flight', c.run.max_closures_in_flight >= 1, '>= 1'),
      ('run.connect_timeout_s', c.run.connect_timeout_s > 0, '> 0'),
      ('run.bundle_timeout_s', c.run.bundle_timeout_s >= 2, '>= 2 (seconds)'),
      ('run.learner_stall_s',
       c.run.learner_stall_s == 0 or c.run.learner_stall_s >= 10,
       '0 (never) or >= 10 (seconds)'),
      ('run.min_free_disk_mb', c.run.min_free_disk_mb >= 0, '>= 0'),
      ('run.intra_op_threads', 0 <= c.run.intra_op_threads <= 256,
       'in [0, 256] (0 = every core)'),
      ('launch.num_ps', c.launch.num_ps >= 1, '>= 1'),
      ('launch.num_workers', c.launch.num_workers >= 1, '>= 1'),
      ('launch.min_shard_bytes', c.launch.min_shard_bytes >= 1, '>= 1'),
      ('health.every_updates', c.health.every_updates >= 1, '>= 1'),
      ('health.probe_states', c.health.probe_states >= 2, '>= 2'),
      ('health.min_q_spread', 0.0 <= c.health.min_q_spread < 1.0,
       'in [0, 1) (0 = never collapsed)'),
      ('health.collapse_probes', c.health.collapse_probes >= 1, '>= 1'),
      ('health.dead_share_warn', 0.0 < c.health.dead_share_warn <= 1.0,
       'in (0, 1]'),
      ('faults.slow_ms', c.faults.slow_ms >= 0, '>= 0'),
      ('faults.nan_after_updates', c.faults.nan_after_updates >= 0, '>= 0 (0 = off)'),
      ('faults.kill_units_at_update', c.faults.kill_units_at_update >= 0,
       '>= 0 (0 = off)'),
  ]
  for key, ok, allowed in checks + _upper_bounds(config):
    if not ok:
      section, _, field_name = key.partition('.')
      value = getattr(getattr(config, section), field_name)
      raise ConfigError(f'{key}={value!r} is out of range; allowed: {allowed}')
  return config


# Upper bounds of the size-like settings; each says what a unit costs.
MAX_ENVS_PER_BUNDLE = 256
MAX_FRAME_STACK = 16
MAX_LAYERS, MAX_LAYER_UNITS = 16, 8192
# Replay memory per stored transition: Atari measured (README, gorila-bench:
# 2.9 KB of worker RSS per transition, frames stored once in chunks of 16);
# vector games (CartPole) estimated from one small row plus Reverb's item.
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


def max_replay_capacity(config: GorilaConfig) -> int:
  """The largest replay.capacity whose memory estimate fits MAX_REPLAY_GB."""
  kind = 'atari' if config.env.id.startswith('ALE/') else 'vector'
  return (MAX_REPLAY_GB << 30) // REPLAY_BYTES_PER_TRANSITION[kind]


def _upper_bounds(c: GorilaConfig) -> list[tuple[str, bool, str]]:
  """(key, within its bound, what is allowed and why) per size-like setting."""
  tasks = c.launch.num_ps + c.launch.num_workers + 1 + int(c.launch.evaluator)
  capacity = max_replay_capacity(c)
  kind = 'atari' if c.env.id.startswith('ALE/') else 'vector'
  return [
      ('env.frame_stack', c.env.frame_stack <= MAX_FRAME_STACK,
       f'<= {MAX_FRAME_STACK} (every state, replay item and network input '
       'holds that many frames)'),
      ('network.mlp_layers', len(c.network.mlp_layers) <= MAX_LAYERS and all(
          n <= MAX_LAYER_UNITS for n in c.network.mlp_layers),
       f'at most {MAX_LAYERS} layers of at most {MAX_LAYER_UNITS} units (the '
       'weights are sent to every actor at each publication)'),
      ('actor.envs_per_bundle', c.actor.envs_per_bundle <= MAX_ENVS_PER_BUNDLE,
       f'<= {MAX_ENVS_PER_BUNDLE} (each env is an emulator and a replay writer '
       'with a stream of its own)'),
      ('replay.capacity', c.replay.capacity <= capacity,
       f'<= {capacity:,} for this game (about '
       f'{REPLAY_BYTES_PER_TRANSITION[kind]:,} bytes of worker memory per '
       f'transition; at most {MAX_REPLAY_GB} GB of replay per bundle)'),
      ('replay.chunk_length', c.replay.chunk_length <= MAX_CHUNK_LENGTH,
       f'<= {MAX_CHUNK_LENGTH} (items wait for their chunk to fill, and a '
       'writer keeps fewer than 50 items pending, where Reverb starts warning)'),
      ('learner.batch_size', c.learner.batch_size <= MAX_BATCH_SIZE,
       f'<= {MAX_BATCH_SIZE} (an Atari batch of {MAX_BATCH_SIZE} is 145 MB of '
       'frames on its worker, three times over with prefetching)'),
      ('learner.n_step', c.learner.n_step <= MAX_N_STEP,
       f'<= {MAX_N_STEP} (each replay item holds frame_stack + n frames)'),
      ('eval.episodes', c.eval.episodes <= MAX_EVAL_EPISODES,
       f'<= {MAX_EVAL_EPISODES} (an episode can last eval.max_episode_frames; '
       'the paper used 30)'),
      ('eval.parallel_envs', c.eval.parallel_envs <= MAX_EVAL_PARALLEL_ENVS,
       f'<= {MAX_EVAL_PARALLEL_ENVS} (each is an emulator in the evaluator)'),
      ('eval.record_frames', c.eval.record_frames <= MAX_RECORD_FRAMES,
       f'<= {MAX_RECORD_FRAMES} (the pictures are held in memory and written '
       'as one GIF into TensorBoard: 100 KB each in colour)'),
      ('run.keep_checkpoints', c.run.keep_checkpoints <= MAX_KEEP_CHECKPOINTS,
       f'<= {MAX_KEEP_CHECKPOINTS} (each is a full copy of the network and '
       'optimizer slots on disk)'),
      ('run.max_closures_in_flight',
       c.run.max_closures_in_flight <= MAX_CLOSURES_IN_FLIGHT,
       f'<= {MAX_CLOSURES_IN_FLIGHT} (each holds a batch on its worker; more '
       'only wait in the coordinator\'s queue)'),
      ('run.min_free_disk_mb', c.run.min_free_disk_mb <= MAX_FREE_DISK_MB,
       f'<= {MAX_FREE_DISK_MB} (1 TiB; a run writes far less)'),
      ('run.lease_timeout_s', 2 <= c.run.lease_timeout_s <= 3600,
       'in [2, 3600] seconds (a dead chief\'s run directory stays locked that '
       'long; a live one renews every few seconds)'),
      ('health.probe_states', c.health.probe_states <= MAX_PROBE_STATES,
       f'<= {MAX_PROBE_STATES} (the chief keeps them in memory and runs the '
       'network on all of them at each probe: 115 MB of Atari states)'),
      ('health.collapse_probes', c.health.collapse_probes <= MAX_COLLAPSE_PROBES,
       f'<= {MAX_COLLAPSE_PROBES} (a dead network never recovers; more only '
       'lets it burn longer)'),
      ('launch.num_workers', tasks <= MAX_TASKS,
       f'at most {MAX_TASKS} tasks in all, ps + workers + chief + evaluator = '
       f'{tasks} (each task is a process of ~1 GB, with an address of its own '
       'among the emulated hosts\' 253)'),
      ('launch.min_shard_bytes', c.launch.min_shard_bytes <= MAX_SHARD_BYTES,
       f'<= {MAX_SHARD_BYTES} (a variable kept whole travels in one gRPC '
       'message, at most 2 GiB)'),
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
    sections[f.name] = cls(**values)
  return GorilaConfig(name=data.get('name', 'custom'), **sections)


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
