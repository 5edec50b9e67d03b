"""The Kubernetes TFJob manifests agree with what the binary expects."""

import glob
import json
import os
import re

import pytest
import yaml

from gorila_tf import cluster as cluster_lib
from gorila_tf import config as config_lib
from gorila_tf import environments
from tests.conftest import REPO

K8S = os.path.join(REPO, 'launch', 'k8s')
MANIFESTS = sorted(glob.glob(os.path.join(K8S, 'tfjob-*.yaml')))
TF_PORT = 2222  # the training operator's default tfjob-port
# The operator's replica names and the binary's task types.
ROLES = {'Chief': 'chief', 'PS': 'ps', 'Worker': 'worker', 'Evaluator': 'evaluator'}
TRAIN_FLAGS = ('config', 'set', 'run_dir')  # what gorila_tf.train defines


def load(path):
  docs = list(yaml.safe_load_all(open(path)))
  job = next(d for d in docs if d['kind'] == 'TFJob')
  claims = {d['metadata']['name'] for d in docs
            if d['kind'] == 'PersistentVolumeClaim'}
  return job, claims


def container(spec):
  containers = spec['template']['spec']['containers']
  assert [c['name'] for c in containers] == ['tensorflow']
  return containers[0]


def parse_args(args):
  """--config, --run_dir and the --set overrides, as gorila_tf.train reads them."""
  parsed = {'set': []}
  for arg in args:
    match = re.fullmatch(r'--(\w+)=(.*)', arg)
    assert match and match.group(1) in TRAIN_FLAGS, arg
    if match.group(1) == 'set':
      parsed['set'].append(match.group(2))
    else:
      parsed[match.group(1)] = match.group(2)
  return parsed


def operator_tf_config(job, replica_type, index):
  """The TF_CONFIG the training operator gives a pod (evaluator outside the cluster)."""
  name = job['metadata']['name']
  cluster = {ROLES[r]: [f'{name}-{r.lower()}-{i}.default.svc:{TF_PORT}'
                        for i in range(spec['replicas'])]
             for r, spec in job['spec']['tfReplicaSpecs'].items() if r != 'Evaluator'}
  return json.dumps({'cluster': cluster, 'environment': 'cloud',
                     'task': {'type': ROLES[replica_type], 'index': index}})


def test_there_are_cpu_and_gpu_manifests():
  assert [os.path.basename(m) for m in MANIFESTS] == ['tfjob-cpu.yaml',
                                                      'tfjob-gpu.yaml']


@pytest.mark.parametrize('path', MANIFESTS, ids=os.path.basename)
def test_every_role_runs_the_binary_with_one_resolvable_config(path):
  job, claims = load(path)
  assert job['apiVersion'] == 'kubeflow.org/v1'
  specs = job['spec']['tfReplicaSpecs']
  assert set(specs) == set(ROLES)
  assert specs['Chief']['replicas'] == 1 and specs['Evaluator']['replicas'] == 1
  args = {container(s)['args'] == container(specs['Chief'])['args']
          for s in specs.values()}
  assert args == {True}, 'every replica must run the same arguments'
  parsed = parse_args(container(specs['Chief'])['args'])
  config = config_lib.resolve(parsed['config'], parsed['set'])
  environments.check_env_id(config.env.id)
  # Replica counts are what the config says the run has.
  assert specs['PS']['replicas'] == config.launch.num_ps
  assert specs['Worker']['replicas'] == config.launch.num_workers
  assert config.launch.evaluator
  for spec in specs.values():
    pod = spec['template']['spec']
    mounts = {m['name']: m['mountPath'] for m in container(spec)['volumeMounts']}
    volumes = {v['name']: v['persistentVolumeClaim']['claimName']
               for v in pod['volumes']}
    # The run directory is on a volume every pod shares.
    assert any(parsed['run_dir'].startswith(mounts[n] + '/') and volumes[n] in claims
               for n in mounts), (parsed['run_dir'], mounts, volumes)


@pytest.mark.parametrize('path', MANIFESTS, ids=os.path.basename)
def test_ports_are_the_tf_port_and_the_reverb_port_after_it(path):
  job, _ = load(path)
  for spec in job['spec']['tfReplicaSpecs'].values():
    ports = {p['name']: p['containerPort'] for p in container(spec)['ports']}
    assert ports == {'tfjob-port': TF_PORT,
                     'reverb': TF_PORT + cluster_lib.REVERB_PORT_OFFSET}


@pytest.mark.parametrize('path', MANIFESTS, ids=os.path.basename)
def test_the_operators_tf_config_gives_every_pod_a_valid_task(path):
  job, _ = load(path)
  specs = job['spec']['tfReplicaSpecs']
  for replica_type, spec in specs.items():
    for index in range(spec['replicas']):
      task = cluster_lib.parse_tf_config(operator_tf_config(job, replica_type, index))
      assert task.type == ROLES[replica_type] and task.index == index
      assert task.num_ps == specs['PS']['replicas']
      assert task.num_workers == specs['Worker']['replicas']
      # Bundles' Reverb servers are reached on the port the pods declare.
      assert all(a.endswith(f':{TF_PORT + cluster_lib.REVERB_PORT_OFFSET}')
                 for a in task.worker_reverb_addresses())


def test_gpu_manifest_gives_each_worker_a_gpu_and_the_cpu_one_none():
  for path in MANIFESTS:
    job, _ = load(path)
    gpus = {r: container(s)['resources'].get('limits', {}).get('nvidia.com/gpu', 0)
            for r, s in job['spec']['tfReplicaSpecs'].items()}
    if path.endswith('gpu.yaml'):
      assert gpus == {'Chief': 0, 'PS': 0, 'Worker': 1, 'Evaluator': 0}
      assert all(container(s)['image'].endswith(':gpu')
                 for s in job['spec']['tfReplicaSpecs'].values())
    else:
      assert set(gpus.values()) == {0}


def test_the_image_runs_the_binary_and_exposes_both_ports():
  dockerfile = open(os.path.join(K8S, 'Dockerfile')).read()
  assert 'ENTRYPOINT ["python", "-m", "gorila_tf.train"]' in dockerfile
  assert f'EXPOSE {TF_PORT} {TF_PORT + cluster_lib.REVERB_PORT_OFFSET}' in dockerfile
  assert 'requirements.lock' in dockerfile  # the same pinned stack as here
