"""An in-process Gorila cluster on free loopback ports, checked end to end.

Runs in its own process (tests/test_inprocess_cluster.py starts it), because
connecting to a cluster changes TensorFlow's global context for good. Here,
real `tf.distribute.Server`s (2 ps, 2 workers) and two real Reverb replay
servers share this process; this process is also the chief.

Prints one JSON object with what it measured.
"""

import dataclasses
import json
import os
import sys
import tempfile

os.environ.setdefault('GRPC_FAIL_FAST', 'use_caller')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # pylint: disable=g-import-not-at-top
import reverb
import tensorflow as tf

from gorila_tf import broadcast
from gorila_tf import cluster as cluster_lib
from gorila_tf import config as config_lib
from gorila_tf import coordinator
from gorila_tf import environments
from gorila_tf import learner as learner_lib
from gorila_tf import local_cluster
from gorila_tf import networks
from gorila_tf import ps
from gorila_tf import replay


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


def main():
  config = make_config()
  info = environments.env_info(config.env)
  task, _ = local_cluster.start(num_ps=2, num_workers=2)
  replay_servers = fill_replay(task, config, info)
  strategy = ps.make_strategy(task, config.launch.min_shard_bytes)
  coord = tf.distribute.coordinator.ClusterCoordinator(strategy)
  model = coordinator._build_model(strategy, config, info, num_workers=2)  # pylint: disable=protected-access
  learner = learner_lib.Learner(model.q_net, model.target_net,
                                model.optimizer, model.learner_state,
                                config.learner)
  result = {}

  # Where the variables live: the 64x64 kernel is split over both ps tasks.
  result['devices'] = sorted({v.device for v in model.q_net.parts()})
  result['num_parts'] = len(model.q_net.parts())
  plain = networks.make_q_network(config.network, info, seed=99)
  result['num_whole'] = len(plain.params)

  # Where the optimizer's update runs: next to each variable part, so only
  # the gradient crosses the network (the slots never leave their ps).
  @tf.function
  def apply_zero_gradient():
    zeros = [tf.zeros(p.shape) for p in model.q_net.params]
    model.optimizer.apply(networks.split_gradients(zeros, model.q_net))

  graph = apply_zero_gradient.get_concrete_function().graph
  result['update_op_devices'] = sorted({
      op.device for op in graph.get_operations()
      if op.type in ('Sqrt', 'AssignVariableOp', 'AssignSubVariableOp')})

  # Local replay: a closure on worker w samples only bundle w's table.
  def dataset_fn():
    addresses, indices = coordinator._per_worker_replay(task, config)  # pylint: disable=protected-access
    return replay.make_dataset(addresses, info, config.learner.batch_size,
                               server_indices=indices)
  iterator = iter(coord.create_per_worker_dataset(dataset_fn))

  @tf.function
  def probe(it):
    batch = next(it)
    index = tf.distribute.coordinator.experimental_get_current_worker_index()
    return index, tf.reduce_mean(batch['reward'])

  probes = [coord.schedule(probe, args=(iterator,)) for _ in range(20)]
  coord.join()
  result['probes'] = [[int(i), float(r)] for i, r in (p.fetch() for p in probes)]

  # Learning: Q of taken actions moves to the bundle rewards (1 and 2).
  learner.sync_target()
  losses = [coord.schedule(learner.train_steps, args=(iterator,))
            for _ in range(60)]
  coord.join()
  values = [r.fetch() for r in losses]
  result['first_loss'] = float(values[0]['loss'])
  result['last_loss'] = float(np.mean([v['loss'] for v in values[-5:]]))
  result['last_mean_q'] = float(np.mean([v['mean_q'] for v in values[-5:]]))
  result['updates'] = int(model.optimizer.iterations.numpy())
  state = model.learner_state
  result['counted'] = [int(state.applied.numpy()),
                       int(state.discarded_stale.numpy()),
                       int(state.discarded_outlier.numpy())]
  result['returned_counts'] = [int(sum(v[k] for v in values)) for k in
                               ('applied', 'discarded_stale', 'discarded_outlier')]
  result['updates_by_worker'] = state.updates_by_worker.numpy().tolist()
  result['loss_stats_count'] = state.loss_stats.numpy()[:, 2].tolist()

  # Global replay with prioritized updates: every learner samples both
  # bundles and writes |TD| priorities back to the table each item came from.
  global_config = config_lib.apply_overrides(
      config, ['replay.mode=global', 'replay.prioritized=true'])

  def global_dataset_fn():
    addresses, indices = coordinator._per_worker_replay(task, global_config)  # pylint: disable=protected-access
    return replay.make_dataset(addresses, info, 64, server_indices=indices)
  global_iterator = iter(coord.create_per_worker_dataset(global_dataset_fn))
  mixed = [coord.schedule(probe, args=(global_iterator,)) for _ in range(6)]
  global_learner = learner_lib.Learner(
      model.q_net, model.target_net, model.optimizer, model.learner_state,
      global_config.learner, global_config.replay, task.worker_reverb_addresses())
  for _ in range(4):
    coord.schedule(global_learner.train_steps, args=(global_iterator,))
  coord.join()
  result['global_batch_rewards'] = [float(p.fetch()[1]) for p in mixed]
  result['priorities_changed'] = []
  for server in replay_servers:
    info_by_table = server.localhost_client().server_info()
    del info_by_table
    priorities = [s.info.priority for s in server.localhost_client().sample(
        replay.REPLAY_TABLE, num_samples=50, emit_timesteps=False)]
    result['priorities_changed'].append(sum(p != 1.0 for p in priorities))

  # Target refresh copies the online network on the ps tasks.
  learner.sync_target()
  result['target_equals_online'] = all(
      np.array_equal(t.numpy(), o.numpy())
      for t, o in zip(model.target_net.parts(), model.q_net.parts()))

  # Publication: actors receive whole tensors equal to the joined shards.
  chief_server = reverb.Server([broadcast.make_variables_table(
      plain.shapes())])
  address = f'localhost:{chief_server.port}'
  broadcast.ParameterPublisher(address, model.q_net).publish(
      version=result['updates'], frames=42)
  version, frames = broadcast.ParameterSubscriber(address, plain).refresh()
  # Joining the parts by hand: each sharded parameter's parts along axis 0.
  joined = [np.concatenate([v.numpy() for v in getattr(p, 'variables', [p])])
            for p in model.q_net.params]
  result['published'] = [version, frames]
  result['subscriber_matches'] = all(
      np.array_equal(p.numpy(), j) for p, j in zip(plain.params, joined))

  # Checkpoint of the sharded model restores into a plain network.
  directory = tempfile.mkdtemp()
  manager = tf.train.CheckpointManager(
      coordinator._checkpoint(model), directory, max_to_keep=2)  # pylint: disable=protected-access
  path = manager.save(checkpoint_number=result['updates'])
  fresh = networks.make_q_network(config.network, info, seed=7)
  status = tf.train.Checkpoint(q_network=fresh).restore(path)
  status.assert_existing_objects_matched()
  result['restored_matches'] = all(
      np.array_equal(f.numpy(), j) for f, j in zip(fresh.params, joined))

  chief_server.stop()
  for s in replay_servers:
    s.stop()
  print('RESULT ' + json.dumps(result), flush=True)
  sys.stdout.flush()
  os._exit(0)  # in-process servers have no clean shutdown; skip the hang


if __name__ == '__main__':
  main()
