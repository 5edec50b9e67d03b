"""Learning health: the figures by hand, the collapse decision, the probe on
real networks and states, and the optimizer's last step read from its slots."""

import re

import numpy as np
import pytest
import tensorflow as tf

from gorila_tf import config as config_lib
from gorila_tf import errors
from gorila_tf.agent import environments
from gorila_tf.agent import health
from gorila_tf.agent import networks
from gorila_tf.agent import optimizers


def test_a_unit_is_dead_when_it_is_never_positive_on_the_probe():
  unit_max = {'conv_0': np.array([0.0, 0.5, -1.0, 2.0]),  # 2 of 4 dead
              'dense_0': np.array([0.1, 0.2])}
  assert health.dead_shares(unit_max) == {'conv_0': 0.5, 'dense_0': 0.0}


def test_q_spread_is_the_mean_over_actions_of_the_std_over_states():
  # Action 0: 1 and 3 (std 1); action 1: 2 and 2 (std 0). Mean |Q| = 2.
  spread, per_action, relative = health.q_spread(np.array([[1.0, 2.0], [3.0, 2.0]]))
  assert spread == 0.5
  np.testing.assert_allclose(per_action, [1.0, 0.0])
  assert relative == 0.25


def test_identical_q_values_have_no_spread():
  spread, _, relative = health.q_spread(np.full((8, 3), -0.7))
  assert spread < 1e-12 and relative < 1e-12


def figures(updates, relative, dead=0.2):
  return health.Figures(updates=updates, dead={'conv_0': dead, 'dense_0': 0.1},
                        q_spread=relative, q_spread_by_action=(relative,),
                        q_spread_relative=relative, q_mean=1.0,
                        weight_norms={}, step_ratios={})


def test_a_collapse_is_called_after_collapse_probes_flat_probes_in_a_row():
  watch = health.HealthWatch(config_lib.HealthConfig(collapse_probes=2,
                                                     min_q_spread=1e-4))
  first = watch.judge(figures(1000, 0.0))
  assert not first.collapsed and 'probe 1 of 2' in first.warnings[0]
  second = watch.judge(figures(2000, 0.0))
  assert second.collapsed and second.warnings == ()
  assert second.collapse == (
      'health: the Q-network looks collapsed at update 2000: Q varies by 0 '
      'across the probe states, 0 of its mean |Q| (below '
      'health.min_q_spread=0.0001); deadest layer conv_0: 20% of its units dead')
  # A run that trains on hears it again every REPEAT_EVERY probes.
  said = [watch.judge(figures(3000 + i, 0.0)).collapse is not None
          for i in range(2 * health.REPEAT_EVERY)]
  assert said.index(True) == health.REPEAT_EVERY - 1 and sum(said) == 2


def test_a_healthy_probe_between_flat_ones_restarts_the_count():
  watch = health.HealthWatch(config_lib.HealthConfig(collapse_probes=2))
  assert not watch.judge(figures(1, 0.0)).collapsed
  assert watch.judge(figures(2, 0.3)).warnings == ()
  assert not watch.judge(figures(3, 0.0)).collapsed


def test_min_q_spread_zero_never_calls_a_collapse():
  watch = health.HealthWatch(config_lib.HealthConfig(min_q_spread=0.0,
                                                     collapse_probes=1))
  assert not watch.judge(figures(1, 0.0)).collapsed


def test_a_mostly_dead_layer_is_warned_once_per_episode():
  watch = health.HealthWatch(config_lib.HealthConfig(dead_share_warn=0.9))
  warned = watch.judge(figures(5, 0.3, dead=0.95)).warnings
  assert warned == ("health: 95% of conv_0's units are dead (never active on "
                    'the probe states) at update 5; warned at '
                    'health.dead_share_warn=0.9',)
  assert watch.judge(figures(6, 0.3, dead=0.97)).warnings == ()
  assert watch.judge(figures(7, 0.3, dead=0.5)).warnings == ()
  assert len(watch.judge(figures(8, 0.3, dead=0.99)).warnings) == 1


def cartpole():
  config = config_lib.resolve('cartpole')
  return config, environments.env_info(config.env)


def test_probe_states_are_real_states_the_same_for_the_same_seed():
  config, info = cartpole()
  a = health.probe_states(config.env, 16, seed=3)
  b = health.probe_states(config.env, 16, seed=3)
  assert a.shape == (16,) + info.observation_shape
  np.testing.assert_array_equal(a, b)
  assert len(np.unique(a[:, 0, 0])) > 8  # states of play, not one state


def test_the_probe_sees_a_fresh_network_alive_and_a_killed_one_collapsed():
  config, info = cartpole()
  net = networks.make_q_network(config.network, info, seed=0)
  states = health.probe_states(config.env, 64, seed=0)
  probe = health.HealthProbe(net.spec, states, net.read)
  fresh = probe.measure(0)
  assert fresh.q_spread_relative > 1e-2
  assert max(fresh.dead.values()) < 0.9
  assert set(fresh.dead) == {'dense_0', 'dense_1'}
  np.testing.assert_allclose(fresh.weight_norms['dense_0'], np.sqrt(
      sum(np.sum(p.numpy() ** 2) for p in net.params[:2])), rtol=1e-5)
  net.params[1].assign(tf.fill(net.params[1].shape, -1000.0))  # dense_0 dead
  dead = probe.measure(1)
  assert dead.dead["dense_0"] == 1.0 and dead.q_spread_relative < 1e-12


def test_nature_network_activations_name_every_hidden_layer():
  config = config_lib.resolve('pong')
  info = environments.EnvInfo('ALE/Pong-v5', (84, 84), np.dtype(np.uint8), 4, 6, 4)
  spec = networks.make_spec(config.network, info)
  params = [tf.constant(v) for v in networks.initial_values(spec, 0)]
  x = tf.zeros((2, 4, 84, 84), tf.uint8)
  q, hidden = networks.activations(spec, params, x)
  assert list(hidden) == ['conv_0', 'conv_1', 'conv_2', 'dense_0']
  assert [h.shape[-1] for h in hidden.values()] == [32, 64, 64, 512]
  np.testing.assert_array_equal(q.numpy(), networks.apply(spec, params, x).numpy())


@pytest.mark.parametrize('optimizer,fused', [('adam', True), ('adam', False),
                                             ('rmsprop', True)])
def test_the_last_step_read_from_the_slots_is_the_step_applied(optimizer, fused):
  learner = config_lib.LearnerConfig(optimizer=optimizer, fused_update=fused,
                                     learning_rate=0.01)
  variable = tf.Variable(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4))
  opt = optimizers.Optimizer(learner, [variable])
  rng = np.random.default_rng(0)
  for _ in range(3):
    before = variable.numpy()
    opt.apply([(tf.constant(rng.normal(size=(3, 4)), tf.float32), variable)])
  step = before - variable.numpy()
  (sq_norm,) = opt.last_step_sq_norms()
  np.testing.assert_allclose(float(sq_norm), np.sum(step ** 2), rtol=1e-4)


def test_written_out_rmsprop_reports_the_step_of_its_mean_gradient():
  learner = config_lib.LearnerConfig(optimizer='rmsprop', fused_update=False,
                                     learning_rate=0.01, rmsprop_rho=0.5,
                                     optimizer_epsilon=0.5)
  variable = tf.Variable(tf.zeros([2]))
  opt = optimizers.Optimizer(learner, [variable])
  opt.apply([(tf.constant([2.0, 2.0]), variable)])
  # mg = 0.5 * 2 = 1; ms = 0.5 * 4 = 2: lr mg / sqrt(ms - mg^2 + eps) = 0.01 / sqrt(1.5)
  (sq_norm,) = opt.last_step_sq_norms()
  np.testing.assert_allclose(float(sq_norm), 2 * (0.01 / np.sqrt(1.5)) ** 2, rtol=1e-5)


def test_health_settings_out_of_range_are_refused_in_one_line():
  for override, allowed in [('health.every_updates=0', '>= 1'),
                            ('health.min_q_spread=1', 'in [0, 1)'),
                            ('health.probe_states=5000', '<= 4096'),
                            ('health.dead_share_warn=0', 'in (0, 1]')]:
    with pytest.raises(errors.ConfigError, match=re.escape(allowed)):
      config_lib.resolve('cartpole', [override])

