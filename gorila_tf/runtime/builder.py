"""The one place a DQN agent is wired from a config.

Every process that runs a piece of the agent gets it here (after Acme's
`DQNBuilder`): the chief its learner and each worker's replay dataset, a
bundle its replay table and actors, the one-process mode all of them, the
benchmark and the tests what they measure. What a setting means is decided
once: `learner.batch_size` and `learner.n_step` size the dataset here,
`actor.envs_per_bundle` the actors, `replay.*` the table and its writers.

    builder = DQNBuilder(config)
    q_net = builder.make_network(seed)                 # plain variables
    optimizer = builder.make_optimizer(q_net.parts())  # slots beside each part
    learner = builder.make_learner(q_net, target, optimizer, state)
    table = builder.make_replay_table()
    dataset = builder.make_dataset(addresses)          # batches of transitions
    actor = builder.make_actor(client, parameters, stats, seed)

Under a `ParameterServerStrategy` scope `make_network` and `make_optimizer`
create sharded variables on the ps tasks (model.build_model).
"""

from __future__ import annotations

import threading
from typing import Callable, Optional, Sequence

import reverb
import tensorflow as tf

from gorila_tf import config as config_lib
from gorila_tf.agent import actor as actor_lib
from gorila_tf.agent import environments
from gorila_tf.agent import health
from gorila_tf.agent import learner as learner_lib
from gorila_tf.agent import networks
from gorila_tf.agent import optimizers
from gorila_tf.agent import replay
from gorila_tf.runtime import faults


class DQNBuilder:
  """Makes the agent's pieces from one `GorilaConfig`."""

  def __init__(self, config: config_lib.GorilaConfig,
               info: Optional[environments.EnvInfo] = None):
    self.config = config
    self.info = info or environments.env_info(config.env)

  def make_network(self, seed: Optional[int] = None) -> networks.QNetwork:
    """A Q-network; `seed` defaults to the run's (online and target alike)."""
    seed = self.config.run.seed if seed is None else seed
    return networks.make_q_network(self.config.network, self.info, seed=seed)

  def make_optimizer(self, variables: Sequence[tf.Variable]) -> optimizers.Optimizer:
    return optimizers.Optimizer(self.config.learner, variables)

  def make_learner(self, q_net: networks.QNetwork, target_net: networks.QNetwork,
                   optimizer: optimizers.Optimizer,
                   state: learner_lib.LearnerState, *,
                   replay_addresses: Sequence[str] = (),
                   compute_device: Optional[str] = None, num_learners: int = 1,
                   worker_index: Optional[Callable[[], tf.Tensor]] = None
                   ) -> learner_lib.Learner:
    """The learner round. `worker_index` defaults to the coordinator's (a
    closure on a worker); one process passes `lambda: 0`."""
    c = self.config
    cls, extra = faults.learner_class(c.faults)  # a plain Learner in every preset
    return cls(q_net=q_net, target_net=target_net, optimizer=optimizer,
               state=state, learner=c.learner, replay_config=c.replay,
               replay_addresses=replay_addresses, compute_device=compute_device,
               num_learners=num_learners, worker_index=worker_index, **extra)

  def make_replay_table(self) -> reverb.Table:
    return replay.make_replay_table(self.config, self.info)

  def make_dataset(self, addresses, server_indices=None,
                   delay_ms=0) -> tf.data.Dataset:
    """Batches of `learner.batch_size` transitions of `learner.n_step` steps."""
    c = self.config.learner
    return replay.make_dataset(addresses, self.info, c.batch_size, c.n_step,
                               delay_ms, server_indices=server_indices)

  def make_writers(self, client: reverb.Client, count: int,
                   stop: Optional[threading.Event] = None
                   ) -> list[replay.TransitionWriter]:
    return [replay.TransitionWriter(client, self.info.frame_stack,
                                    self.config.learner.n_step,
                                    chunk_length=self.config.replay.chunk_length,
                                    stop=stop)
            for _ in range(count)]

  def make_actor(self, client: reverb.Client,
                 parameters: Callable[[networks.QNetwork], actor_lib.ParameterSource],
                 stats: actor_lib.StatsSink, seed: int, bundle: int = 0,
                 num_bundles: int = 1,
                 stop: Optional[threading.Event] = None) -> actor_lib.Actor:
    """`actor.envs_per_bundle` games writing into `client`'s replay table;
    `parameters(q_net)` is where the actors' network gets its parameters; a
    set `stop` ends a write held back by the replay's rate limiter."""
    n = self.config.actor.envs_per_bundle
    q_net = self.make_network(seed)
    return actor_lib.Actor(
        self.config, self.info, environments.VectorEnv(self.config.env, n, seed),
        q_net, self.make_writers(client, n, stop), parameters(q_net), stats,
        seed=seed, bundle=bundle, num_bundles=num_bundles)

  def make_health_probe(self, q_net: networks.QNetwork,
                        optimizer: Optional[optimizers.Optimizer] = None
                        ) -> health.HealthProbe:
    """The network probe on `health.probe_states` real states of the run's seed."""
    c = self.config
    states = health.probe_states(c.env, c.health.probe_states, c.run.seed)
    if optimizer is None:
      return health.HealthProbe(q_net.spec, states, q_net.read)
    return health.HealthProbe(q_net.spec, states, q_net.read,
                              optimizer.last_step_sq_norms, q_net.part_names())


def actor_seed(config: config_lib.GorilaConfig, bundle: int) -> int:
  """Bundle `bundle`'s actors' seed: apart for every run seed and bundle."""
  return config.run.seed * 10_007 + bundle * 1_000
