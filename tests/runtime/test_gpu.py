"""The learner on a GPU worker: where a worker has a GPU, its learner
closures compute there. The placement rule runs everywhere; the real run
only where a GPU is visible."""

import collections
import subprocess
import sys

import pytest
import tensorflow as tf

from gorila_tf.agent import learner as learner_lib
from tests.conftest import REPO

Device = collections.namedtuple('Device', 'name device_type')


def test_the_learner_computes_on_a_gpu_when_any_worker_has_one():
  cpu_only = [Device('/job:worker/replica:0/task:0/device:CPU:0', 'CPU'),
              Device('/job:ps/replica:0/task:0/device:CPU:0', 'CPU')]
  assert learner_lib.worker_compute_device(cpu_only) is None
  with_gpu = cpu_only + [Device('/job:worker/replica:0/task:1/device:GPU:0', 'GPU')]
  assert learner_lib.worker_compute_device(with_gpu) == '/device:GPU:0'
  chief_gpu_only = cpu_only + [Device('/job:chief/replica:0/task:0/device:GPU:0', 'GPU')]
  assert learner_lib.worker_compute_device(chief_gpu_only) is None


GPU_PROBE = r'''
import json, os
os.environ['TF_CPP_MIN_LOG_LEVEL'] = '2'
import numpy as np, tensorflow as tf
from gorila_tf import config as config_lib
from gorila_tf.agent import environments, learner as learner_lib
from gorila_tf.agent import replay
from gorila_tf.runtime import builder, model as model_lib, ps
from gorila_tf.tools import inprocess_cluster
config = config_lib.resolve('pong', ['replay.min_size=64', 'replay.samples_per_insert=0'])
info = environments.env_info(config.env)
task, _ = inprocess_cluster.start(num_ps=1, num_workers=1)
import reverb
_, port = task.worker_reverb_addresses()[0].rsplit(':', 1)
server = reverb.Server([replay.make_replay_table(config, info)], port=int(port))
writer = replay.TransitionWriter(server.localhost_client(), info.frame_stack)
rng = np.random.default_rng(0)
frame = lambda: rng.integers(0, 255, (84, 84), dtype=np.uint8)
writer.begin_episode(np.stack([frame() for _ in range(info.frame_stack)]))
for _ in range(200):
  writer.add(frame(), int(rng.integers(info.num_actions)), 0.0, 0.99)
writer.end_episode(); writer.close()
strategy = ps.make_strategy(task, config.launch.min_shard_bytes)
coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
dqn = builder.DQNBuilder(config, info)
model = model_lib.build_model(strategy, dqn, 1)
device = learner_lib.worker_compute_device(tf.config.list_logical_devices())
learner = dqn.make_learner(model.q_net, model.target_net, model.optimizer,
    model.learner_state, compute_device=device)
iterator = iter(coordinator.create_per_worker_dataset(model_lib.make_dataset_fn(task, dqn)))
graph = learner.train_steps.get_concrete_function(iterator).graph
convs = {op.device for op in graph.get_operations() if op.type == 'Conv2D'}
results = [coordinator.schedule(learner.train_steps, args=(iterator,)) for _ in range(3)]
coordinator.join()
print('RESULT ' + json.dumps({'device': device, 'convs': sorted(convs),
      'losses': [float(r.fetch()['loss']) for r in results]}), flush=True)
os._exit(0)
'''


@pytest.mark.skipif(not tf.config.list_physical_devices('GPU'),
                    reason='no GPU visible on this machine')
def test_learner_closures_run_on_the_workers_gpu():
  proc = subprocess.run([sys.executable, '-c', GPU_PROBE], cwd=REPO,
                        capture_output=True, text=True, timeout=600)
  line = next(l for l in proc.stdout.splitlines() if l.startswith('RESULT '))
  import json  # pylint: disable=g-import-not-at-top
  result = json.loads(line[len('RESULT '):])
  assert result['device'] == '/device:GPU:0'
  assert all('GPU' in d for d in result['convs']), result['convs']
  assert all(loss == loss for loss in result['losses']), result  # finite
