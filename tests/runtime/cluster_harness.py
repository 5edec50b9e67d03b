"""An in-process Gorila cluster on free loopback ports, checked end to end.

Runs in its own process (tests/runtime/test_inprocess_cluster.py starts it), because
connecting to a cluster changes TensorFlow's global context for good. Here,
real `tf.distribute.Server`s (2 ps, 2 workers) and two real Reverb replay
servers share this process; this process is also the chief.

Each function below checks one property and returns what it measured;
main() runs them in order (later ones build on the learning done earlier)
and prints one JSON object. Only public names of gorila_tf are used.
"""

import json
import os
import sys
import tempfile

os.environ.setdefault('GRPC_FAIL_FAST', 'use_caller')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # pylint: disable=g-import-not-at-top
import reverb
import tensorflow as tf

from gorila_tf import config as config_lib
from gorila_tf.agent import environments
from gorila_tf.agent import learner as learner_lib
from gorila_tf.agent import networks
from gorila_tf.agent import replay
from gorila_tf.runtime import broadcast
from gorila_tf.runtime import builder
from gorila_tf.runtime import cluster as cluster_lib
from gorila_tf.runtime import model as model_lib
from gorila_tf.runtime import ps
from gorila_tf.tools import inprocess_cluster


def make_config() -> config_lib.GorilaConfig:
  return config_lib.resolve('cartpole', [
      'replay.min_size=1', 'replay.samples_per_insert=0',
      'learner.batch_size=16', 'learner.steps_per_closure=4',
      'learner.learning_rate=0.003', 'launch.min_shard_bytes=8192'])


def fill_replay(task, config, info):
  """Bundle b holds only transitions with reward b + 1, all terminal."""
  servers = []
  rng = np.random.default_rng(0)
  for b, address in enumerate(task.worker_reverb_addresses()):
    _, port = cluster_lib.split_address(address)
    server = reverb.Server([replay.make_replay_table(config, info)], port=port)
    writer = replay.TransitionWriter(server.localhost_client(), info.frame_stack)
    for _ in range(50):
      # States around (b + 1): the net can tell the bundles apart and fit
      # Q(s, a) = reward exactly, so the loss can go to ~0.
      state = lambda: (b + 1 + 0.1 * rng.normal(size=4)).astype(np.float32)
      writer.begin_episode(state()[None])
      writer.add(state(), int(rng.integers(2)), reward=float(b + 1), discount=0.0)
      writer.end_episode()
    writer.close()
    servers.append(server)
  return servers


def make_learner(model, config, addresses=()) -> learner_lib.Learner:
  return builder.DQNBuilder(config).make_learner(
      model.q_net, model.target_net, model.optimizer, model.learner_state,
      replay_addresses=addresses)


def replay_iterator(cluster_coordinator, task, config, info):
  dataset_fn = model_lib.make_dataset_fn(task, builder.DQNBuilder(config, info))
  return iter(cluster_coordinator.create_per_worker_dataset(dataset_fn))


@tf.function
def probe(iterator):
  """(worker index, mean reward) of one batch sampled on a worker."""
  batch = next(iterator)
  index = tf.distribute.coordinator.experimental_get_current_worker_index()
  return index, tf.reduce_mean(batch['reward'])


def joined_parameters(model) -> list[np.ndarray]:
  """Each sharded parameter's parts joined along axis 0, by hand."""
  return [np.concatenate([v.numpy() for v in getattr(p, 'variables', [p])])
          for p in model.q_net.params]


def variable_placement(model, config, info) -> dict:
  """Where the variables live: the 64x64 kernel is split over both ps tasks."""
  plain = networks.make_q_network(config.network, info, seed=99)
  return {'devices': sorted({v.device for v in model.q_net.parts()}),
          'num_parts': len(model.q_net.parts()),
          'num_whole': len(plain.params)}


def optimizer_update_devices(model) -> dict:
  """Where the optimizer's update runs: next to each variable part, so only
  the gradient crosses the network (the slots never leave their ps)."""

  @tf.function
  def apply_zero_gradient():
    zeros = [tf.zeros(p.shape) for p in model.q_net.params]
    model.optimizer.apply(networks.split_gradients(zeros, model.q_net))

  graph = apply_zero_gradient.get_concrete_function().graph
  return {'update_op_devices': sorted({
      op.device for op in graph.get_operations()
      # The fused kernels (learner.fused_update, on by default) or the
      # written-out rule's arithmetic and assignments.
      if op.type.startswith('ResourceApply')
      or op.type in ('Sqrt', 'AssignVariableOp', 'AssignSubVariableOp')})}


def local_replay_probes(cluster_coordinator, iterator) -> dict:
  """Local replay: a closure on worker w samples only bundle w's table."""
  probes = [cluster_coordinator.schedule(probe, args=(iterator,))
            for _ in range(20)]
  cluster_coordinator.join()
  return {'probes': [[int(i), float(r)] for i, r in (p.fetch() for p in probes)]}


def learning(cluster_coordinator, learner, model, iterator) -> dict:
  """Q of taken actions moves to the bundle rewards (1 and 2); every outcome
  is counted on the ps and returned by the closures alike."""
  learner.sync_target()
  # The first closure alone, so that its loss is the loss before learning:
  # scheduled with the others, whichever worker is ready first may run it
  # after many updates.
  results = [cluster_coordinator.schedule(learner.train_steps, args=(iterator,))]
  cluster_coordinator.join()
  results += [cluster_coordinator.schedule(learner.train_steps, args=(iterator,))
              for _ in range(59)]
  cluster_coordinator.join()
  values = [r.fetch() for r in results]
  state = model.learner_state
  return {
      'first_loss': float(values[0]['loss']),
      'last_loss': float(np.mean([v['loss'] for v in values[-5:]])),
      'last_mean_q': float(np.mean([v['mean_q'] for v in values[-5:]])),
      'updates': int(model.optimizer.iterations.numpy()),
      'counted': [int(state.applied.numpy()), int(state.discarded_stale.numpy()),
                  int(state.discarded_outlier.numpy())],
      'returned_counts': [int(sum(v[k] for v in values)) for k in
                          ('applied', 'discarded_stale', 'discarded_outlier')],
      'updates_by_worker': state.updates_by_worker.numpy().tolist(),
      'loss_stats_count': state.loss_stats.numpy()[:, 2].tolist(),
  }


def global_prioritized_replay(cluster_coordinator, task, config, info, model,
                              replay_servers) -> dict:
  """Global replay with prioritized updates: every learner samples both
  bundles and writes |TD| priorities back to the table each item came from."""
  global_config = config_lib.apply_overrides(
      config, ['replay.mode=global', 'replay.prioritized=true',
               'learner.batch_size=64'])
  iterator = replay_iterator(cluster_coordinator, task, global_config, info)
  mixed = [cluster_coordinator.schedule(probe, args=(iterator,))
           for _ in range(6)]
  learner = make_learner(model, global_config, task.worker_reverb_addresses())
  for _ in range(4):
    cluster_coordinator.schedule(learner.train_steps, args=(iterator,))
  cluster_coordinator.join()
  changed = []
  for server in replay_servers:
    priorities = [s.info.priority for s in server.localhost_client().sample(
        replay.REPLAY_TABLE, num_samples=50, emit_timesteps=False)]
    changed.append(sum(p != 1.0 for p in priorities))
  return {'global_batch_rewards': [float(p.fetch()[1]) for p in mixed],
          'priorities_changed': changed}


def target_refresh(learner, model) -> dict:
  """Target refresh copies the online network on the ps tasks."""
  learner.sync_target()
  return {'target_equals_online': all(
      np.array_equal(t.numpy(), o.numpy())
      for t, o in zip(model.target_net.parts(), model.q_net.parts()))}


def publication(model, config, info, version: int) -> dict:
  """Actors receive whole tensors equal to the joined shards."""
  plain = networks.make_q_network(config.network, info, seed=99)
  chief_server = reverb.Server([broadcast.make_variables_table(plain.shapes())])
  address = f'localhost:{chief_server.port}'
  broadcast.ParameterPublisher(address, model.q_net).publish(
      version=version, frames=42)
  published = broadcast.ParameterSubscriber(address, plain).refresh()
  chief_server.stop()
  return {'published': list(published),
          'subscriber_matches': all(
              np.array_equal(p.numpy(), j)
              for p, j in zip(plain.params, joined_parameters(model)))}


def checkpoint_restore(model, config, info, number: int) -> dict:
  """The sharded model's checkpoint restores into a plain network."""
  manager = tf.train.CheckpointManager(model.checkpoint(), tempfile.mkdtemp(),
                                       max_to_keep=2)
  path = manager.save(checkpoint_number=number)
  fresh = networks.make_q_network(config.network, info, seed=7)
  status = tf.train.Checkpoint(q_network=fresh).restore(path)
  status.assert_existing_objects_matched()
  return {'restored_matches': all(
      np.array_equal(f.numpy(), j)
      for f, j in zip(fresh.params, joined_parameters(model)))}


def main():
  config = make_config()
  info = environments.env_info(config.env)
  task, _ = inprocess_cluster.start(num_ps=2, num_workers=2)
  replay_servers = fill_replay(task, config, info)
  strategy = ps.make_strategy(task, config.launch.min_shard_bytes)
  cluster_coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
  model = model_lib.build_model(strategy, builder.DQNBuilder(config, info),
                                num_workers=2)
  learner = make_learner(model, config)
  iterator = replay_iterator(cluster_coordinator, task, config, info)

  result = {}
  result.update(variable_placement(model, config, info))
  result.update(optimizer_update_devices(model))
  result.update(local_replay_probes(cluster_coordinator, iterator))
  result.update(learning(cluster_coordinator, learner, model, iterator))
  result.update(global_prioritized_replay(cluster_coordinator, task, config,
                                          info, model, replay_servers))
  result.update(target_refresh(learner, model))
  result.update(publication(model, config, info, version=result['updates']))
  result.update(checkpoint_restore(model, config, info, result['updates']))

  for server in replay_servers:
    server.stop()
  print('RESULT ' + json.dumps(result), flush=True)
  sys.stdout.flush()
  os._exit(0)  # in-process servers have no clean shutdown; skip the hang


if __name__ == '__main__':
  main()
