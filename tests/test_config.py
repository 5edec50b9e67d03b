"""Presets, overrides and range checks of the run configuration."""

import dataclasses
import re
import typing

import pytest

from gorila_tf import config as config_lib
from gorila_tf import errors


def test_every_preset_loads_and_validates():
  presets = config_lib.available_presets()
  assert {'atari', 'pong', 'breakout', 'cartpole'} <= set(presets)
  for name in presets:
    config = config_lib.resolve(name)
    assert config.name == name


def test_atari_preset_holds_the_papers_shared_hyperparameters():
  c = config_lib.resolve('atari')
  assert (c.learner.batch_size, c.learner.discount) == (32, 0.99)
  assert c.learner.learning_rate == 0.00025
  assert c.learner.optimizer == 'rmsprop' and c.learner.rmsprop_rho == 0.95
  assert c.learner.optimizer_epsilon == 0.01  # on the summed loss, as Nature's code
  assert c.learner.optimizer_epsilon_units == 'summed_loss'
  assert c.env.frameskip == 4 and c.env.frame_stack == 4 and c.env.noop_max == 30
  assert c.env.repeat_action_probability == 0.0  # not ALE v5's 0.25
  assert c.eval.epsilon == 0.05 and c.eval.max_episode_frames == 18_000
  assert c.eval.episodes == 30


@pytest.mark.parametrize('preset', ['atari', 'pong', 'breakout'])
def test_atari_presets_refresh_the_target_every_10k_agent_steps(preset):
  # Nature's code (deepmind/dqn run_gpu: target_q=10000 agent steps,
  # update_freq=4), DQN Zoo (40k frames) and Dopamine (10000 agent steps)
  # refresh every 10k agent steps. The period counts updates here: one update
  # of batch_size transitions per batch_size / samples_per_insert agent steps.
  c = config_lib.resolve(preset)
  steps_per_update = c.learner.batch_size / c.replay.samples_per_insert
  assert steps_per_update == 4  # 32 / 8
  assert c.learner.target_update_period == 2_500  # updates
  assert c.learner.target_update_period * steps_per_update == 10_000  # agent steps
  assert c.learner.target_update_period * steps_per_update * c.env.frameskip == 40_000


def test_overrides_convert_to_field_types():
  c = config_lib.resolve('cartpole', [
      'learner.batch_size=32', 'learner.learning_rate=1e-3',
      'network.mlp_layers=32,16', 'launch.evaluator=true', 'env.id=CartPole-v1',
      'run.max_frames=1_000'])
  assert c.learner.batch_size == 32
  assert c.learner.learning_rate == 0.001
  assert c.network.mlp_layers == (32, 16)
  assert c.launch.evaluator is True
  assert c.run.max_frames == 1000


@pytest.mark.parametrize('section, key, value, message', [
    ('learner', 'batch_size', '32', "learner.batch_size='32' in config.json is "
     'not a valid integer'),
    ('learner', 'double_dqn', 1, 'learner.double_dqn=1 in config.json is not a '
     'valid boolean'),
    ('run', 'stop_at_eval_return', 'high', "run.stop_at_eval_return='high' in "
     'config.json is not a valid finite number or none'),
    ('network', 'mlp_layers', [64, 'x'], 'network.mlp_layers='),
])
def test_a_hand_edited_config_json_of_the_wrong_type_is_one_line(section, key,
                                                                  value, message):
  data = config_lib.to_dict(config_lib.resolve('pong'))
  data[section][key] = value
  with pytest.raises(errors.ConfigError, match=re.escape(message)):
    config_lib.from_dict(data)


def test_a_config_json_cut_short_is_one_line_naming_it(tmp_path):
  # The tools read a run's config.json (found by the bad-input sweep: a
  # cut-short one was a JSONDecodeError traceback, exit 1).
  from gorila_tf.runtime import run_dir as run_dir_lib  # pylint: disable=g-import-not-at-top
  run_dir_lib.write_json_atomic(str(tmp_path / 'config.json'),
                                config_lib.to_dict(config_lib.resolve('cartpole')))
  assert run_dir_lib.read_config(str(tmp_path)).env.id == 'CartPole-v1'
  text = (tmp_path / 'config.json').read_text()
  (tmp_path / 'config.json').write_text(text[:len(text) // 2])
  with pytest.raises(errors.ConfigError, match=re.escape(
      f'{tmp_path}/config.json is not valid JSON (')):
    run_dir_lib.read_config(str(tmp_path))


def test_an_optional_setting_takes_a_number_or_none():
  assert config_lib.resolve('pong').run.stop_at_eval_return is None
  c = config_lib.resolve('pong', ['run.stop_at_eval_return=18'])
  assert c.run.stop_at_eval_return == 18.0
  c = config_lib.resolve('pong', ['run.stop_at_eval_return=18',
                                  'run.stop_at_eval_return=none'])
  assert c.run.stop_at_eval_return is None


def test_a_non_finite_value_in_a_config_is_out_of_every_range():
  # A config.json edited by hand reaches validate without the parser.
  c = config_lib.resolve('pong')
  bad = dataclasses.replace(c, learner=dataclasses.replace(
      c.learner, learning_rate=float('inf')))
  with pytest.raises(config_lib.ConfigError,
                     match='learner.learning_rate=inf is out of range; allowed: '
                           'a finite number'):
    config_lib.validate(bad)
  assert not config_lib.in_range(float('nan'), 'in [0, 1]')


def test_override_accepts_integral_scientific_notation():
  c = config_lib.resolve('pong', ['run.max_frames=2e6'])
  assert c.run.max_frames == 2_000_000


@pytest.mark.parametrize('override, message', [
    ('learner.batchsize=3', "unknown config key 'learner.batchsize'"),
    ('lerner.batch_size=3', "unknown config section 'lerner'"),
    ('learner.batch_size', 'is not of the form section.field=value'),
    ('learner.batch_size=abc', "learner.batch_size='abc' is not a valid integer"),
    ('learner.batch_size=2.5', "learner.batch_size='2.5' is not a valid integer"),
    ('launch.evaluator=maybe', 'is not a valid boolean'),
    # inf passed '> 0' once, and the first update was non-finite.
    ('learner.learning_rate=inf', "learner.learning_rate='inf' is not a valid "
     'finite number'),
    ('learner.learning_rate=nan', 'is not a valid finite number'),
    ('run.stop_at_eval_return=-inf', 'is not a valid finite number or none'),
    ('run.stop_at_eval_return=soon', 'is not a valid finite number or none'),
])
def test_bad_overrides_name_the_bad_value(override, message):
  with pytest.raises(errors.ConfigError, match=message) as e:
    config_lib.resolve('cartpole', [override])
  assert '\n' not in str(e.value)


def test_unknown_key_suggests_the_close_one():
  with pytest.raises(errors.ConfigError, match='did you mean learner.batch_size'):
    config_lib.resolve('cartpole', ['learner.batchsize=3'])


def test_unknown_preset_lists_the_allowed_ones():
  with pytest.raises(errors.ConfigError,
                     match=r"unknown config preset 'pongg'.*did you mean pong"):
    config_lib.resolve('pongg')


@pytest.mark.parametrize('override, message', [
    ('actor.epsilon_end=1.5', r'actor.epsilon_end=1.5 is out of range; allowed: in \[0, 1\]'),
    ('actor.envs_per_bundle=-1', 'actor.envs_per_bundle=-1 is out of range'),
    ('launch.num_workers=0', 'launch.num_workers=0 is out of range'),
    ('learner.batch_size=100000',
     r'learner.batch_size=100000 is out of range; allowed: in \[1, replay.capacity=20000\]'),
    ('replay.min_size=0', 'replay.min_size=0 is out of range'),
    ('learner.discount=1.1', 'learner.discount=1.1 is out of range'),
])
def test_out_of_range_values_are_refused(override, message):
  with pytest.raises(errors.ConfigError, match=message):
    config_lib.resolve('cartpole', [override])


@pytest.mark.parametrize('key, choices', [
    ('network.kind', config_lib.NetworkKind),
    ('learner.optimizer', config_lib.OptimizerName),
    ('replay.mode', config_lib.ReplayMode),
    ('actor.epsilon_schedule', config_lib.EpsilonSchedule),
    ('learner.optimizer_epsilon_units', config_lib.EpsilonUnits),
])
def test_closed_set_fields_take_their_literal_values_and_refuse_others(key, choices):
  section, _, field = key.partition('.')
  for value in typing.get_args(choices):
    config = config_lib.resolve('cartpole', [f'{key}={value}'])
    assert getattr(getattr(config, section), field) == value
  allowed = ', '.join(repr(v) for v in typing.get_args(choices))
  with pytest.raises(errors.ConfigError) as e:
    config_lib.resolve('cartpole', [f'{key}=everywhere'])
  assert str(e.value) == f"{key}='everywhere' is not allowed; allowed: {allowed}"


def test_validate_refuses_a_closed_set_value_from_a_preset():
  config = config_lib.resolve('cartpole')
  bad = dataclasses.replace(config, replay=dataclasses.replace(config.replay,
                                                               mode='both'))
  with pytest.raises(errors.ConfigError,
                     match="replay.mode='both' is not allowed; allowed: 'local', 'global'"):
    config_lib.validate(bad)


def test_fault_injection_has_a_section_of_its_own_and_is_off_by_default():
  for name in config_lib.available_presets():
    assert config_lib.resolve(name).faults == config_lib.FaultsConfig()
  c = config_lib.resolve('cartpole', ['faults.slow_worker=1', 'faults.slow_ms=500'])
  assert (c.faults.slow_worker, c.faults.slow_ms) == (1, 500)
  with pytest.raises(errors.ConfigError, match='faults.slow_ms=-1 is out of range'):
    config_lib.resolve('cartpole', ['faults.slow_ms=-1'])


def test_config_json_of_earlier_versions_reads_its_fault_keys_into_faults():
  data = config_lib.to_dict(config_lib.resolve('cartpole'))
  del data['faults']
  data['learner']['debug_slow_worker'] = 1
  data['learner']['debug_nan_after_updates'] = 7
  c = config_lib.from_dict(data)
  assert (c.faults.slow_worker, c.faults.nan_after_updates) == (1, 7)


def test_config_round_trips_through_a_dict():
  c = config_lib.resolve('pong', ['network.mlp_layers=8,8'])
  assert config_lib.from_dict(config_lib.to_dict(c)) == c


def test_configs_are_frozen():
  c = config_lib.resolve('pong')
  with pytest.raises(dataclasses.FrozenInstanceError):
    c.learner.batch_size = 64  # type: ignore[misc]


@pytest.mark.parametrize('preset, override, message', [
    ('cartpole', 'actor.envs_per_bundle=100000',
     r'actor.envs_per_bundle=100000 is out of range; allowed: <= 256 \(each env '
     r'is an emulator and a replay writer'),
    ('pong', 'replay.capacity=30_000_000',
     r'replay.capacity=30000000 is out of range; allowed: <= 22,906,492 for '
     r'this game \(about 3,000 bytes of worker memory per transition; at most '
     r'64 GB of replay per bundle\)'),
    ('cartpole', 'replay.capacity=1e9', r'<= 229,064,922 for this game \(about 300 '),
    ('cartpole', 'replay.chunk_length=64', r'replay.chunk_length=64 .* <= 32'),
    ('pong', 'learner.batch_size=8192', r'learner.batch_size=8192 .* <= 4096 \(an '
     r'Atari batch of 4096 is 145 MB'),
    ('cartpole', 'learner.n_step=100', r'learner.n_step=100 .* <= 32'),
    ('pong', 'env.frame_stack=64', r'env.frame_stack=64 .* <= 16'),
    ('cartpole', 'network.mlp_layers=64,100000', r'at most 16 layers of at most 8192'),
    ('cartpole', 'eval.episodes=5000', r'eval.episodes=5000 .* <= 1000'),
    ('cartpole', 'eval.record_frames=100000', r'eval.record_frames=100000 .* <= 2000'),
    ('cartpole', 'run.keep_checkpoints=1000', r'run.keep_checkpoints=1000 .* <= 100'),
    ('cartpole', 'run.max_closures_in_flight=1000', r'<= 64 \(each holds a batch'),
    ('cartpole', 'run.min_free_disk_mb=1e9', r'run.min_free_disk_mb=1000000000 .* <= 1048576 \(1 TiB'),
    ('cartpole', 'launch.num_workers=252',
     r'launch.num_workers=252 is out of range; allowed: at most 253 tasks in all, '
     r'ps \+ workers \+ chief \+ evaluator = 255'),
    ('cartpole', 'launch.min_shard_bytes=1e10', r'<= 2147483648 \(a variable kept whole'),
])
def test_size_like_settings_have_an_upper_bound_that_says_why(preset, override,
                                                              message):
  with pytest.raises(errors.ConfigError, match=message) as e:
    config_lib.resolve(preset, [override])
  assert '\n' not in str(e.value)


@pytest.mark.parametrize('override', [
    'actor.envs_per_bundle=256', 'replay.capacity=22_906_492',
    'replay.chunk_length=32', 'learner.batch_size=4096', 'env.frame_stack=16',
    'eval.episodes=1000', 'launch.num_workers=250', 'run.lease_timeout_s=3600',
])
def test_each_upper_bound_itself_is_allowed(override):
  config_lib.resolve('pong', [override])


def test_the_recorded_view_is_a_closed_set_defaulting_to_the_colour_screen():
  assert config_lib.resolve('pong').eval.record_view == 'screen'
  assert config_lib.resolve('pong', ['eval.record_view=agent']).eval.record_view == 'agent'
  with pytest.raises(errors.ConfigError, match="allowed: 'screen', 'agent'"):
    config_lib.resolve('pong', ['eval.record_view=gray'])


@pytest.mark.parametrize('value,allowed,ok', [
    (1, '>= 1', True), (0, '>= 1', False), (0.0, '> 0', False),
    (1.0, 'in [0, 1]', True), (1.0, 'in [0, 1)', False), (0.0, 'in (0, 1]', False),
    (0, '>= 0 (0 = off)', True), (1000, 'in [1, 1000]: updates per learner', True),
    (3601, 'in [2, 3600] seconds (why)', False)])
def test_a_declared_range_reads_as_the_error_line_says_it(value, allowed, ok):
  assert config_lib.in_range(value, allowed) is ok


def test_every_number_setting_declares_its_range_once():
  # Ranges that depend on another field are checked as relations instead.
  relations = {'replay.min_size', 'run.learner_stall_s', 'faults.slow_worker'}
  undeclared = []
  for f in dataclasses.fields(config_lib.GorilaConfig):
    if f.name == 'name':
      continue
    for field in dataclasses.fields(typing.get_type_hints(config_lib.GorilaConfig)[f.name]):
      key = f'{f.name}.{field.name}'
      if field.type in ('int', 'float') and key not in relations and not (
          field.metadata.get('allowed') or field.metadata.get('at_most')):
        undeclared.append(key)
  assert not undeclared, undeclared
