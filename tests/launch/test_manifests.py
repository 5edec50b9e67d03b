"""The Kubernetes TFJob manifests agree with what the binary expects, and fence it."""

import copy
import glob
import json
import os
import re

import pytest
import yaml

from gorila_tf import config as config_lib
from gorila_tf.agent import environments
from gorila_tf.runtime import cluster as cluster_lib
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


# The NetworkPolicy: TF gRPC and Reverb have no authentication, so each manifest
# ships a policy that admits ingress to every pod of its job only from pods of
# the same job, and only on the ports the roles listen on.

def operator_labels(job_name, replica_type, index):
  """Labels Kubeflow's training operator (v1.4+, kubeflow/common's constants)
  puts on a TFJob pod on top of its template's labels."""
  labels = {'training.kubeflow.org/job-name': job_name,
            'training.kubeflow.org/operator-name': 'tfjob-controller',
            'training.kubeflow.org/replica-type': replica_type.lower(),
            'training.kubeflow.org/replica-index': str(index)}
  if replica_type == 'Chief':
    labels['training.kubeflow.org/job-role'] = 'master'
  return labels


def pod_labels(job):
  """{pod name: labels} of every pod the operator creates for the job."""
  name = job['metadata']['name']
  pods = {}
  for replica_type, spec in job['spec']['tfReplicaSpecs'].items():
    template = spec['template'].get('metadata', {}).get('labels') or {}
    for index in range(spec['replicas']):
      pods[f'{name}-{replica_type.lower()}-{index}'] = {
          **template, **operator_labels(name, replica_type, index)}
  return pods


def renamed(job, other):
  """The job as a copy of the manifest renamed to `other` would run it."""
  text = json.dumps(job).replace(job['metadata']['name'], other)
  return json.loads(text)


def foreign_pods(job):
  """Labels of pods that are not this job's, all in the same namespace."""
  pods = {'unlabelled': {}, 'some-app': {'app': 'web'}}
  pods.update(pod_labels(renamed(job, 'another-gorila-job')))
  for path in MANIFESTS:  # the other manifest's job
    other, _ = load(path)
    if other['metadata']['name'] != job['metadata']['name']:
      pods.update(pod_labels(other))
  return pods


def selects(selector, labels):
  """Kubernetes' LabelSelector semantics ({} selects every pod)."""
  assert set(selector) <= {'matchLabels', 'matchExpressions'}, selector
  if any(labels.get(k) != v for k, v in (selector.get('matchLabels') or {}).items()):
    return False
  for e in selector.get('matchExpressions') or []:
    key, op, values = e['key'], e['operator'], e.get('values', [])
    ok = {'In': lambda: labels.get(key) in values,
          'NotIn': lambda: key not in labels or labels[key] not in values,
          'Exists': lambda: key in labels,
          'DoesNotExist': lambda: key not in labels}[op]()
    if not ok:
      return False
  return True


def listening_ports(job):
  """The ports the job's roles listen on: each role's TF port (its tfjob-port)
  and the Reverb port REVERB_PORT_OFFSET after it."""
  ports = set()
  for spec in job['spec']['tfReplicaSpecs'].values():
    tf = {p['name']: p['containerPort'] for p in container(spec)['ports']}['tfjob-port']
    ports |= {tf, tf + cluster_lib.REVERB_PORT_OFFSET}
  return ports


def load_policy(path):
  docs = list(yaml.safe_load_all(open(path)))
  kinds = [d['kind'] for d in docs]
  policies = [d for d in docs if d['kind'] == 'NetworkPolicy']
  assert len(policies) == 1, kinds
  # Applied before the job, so no pod of the job starts unfenced.
  assert kinds.index('NetworkPolicy') < kinds.index('TFJob'), kinds
  return policies[0]


def check_selects_exactly_the_job(selector, job, what):
  own = pod_labels(job)
  missed = sorted(p for p, labels in own.items() if not selects(selector, labels))
  assert not missed, f'{what} {selector} misses pods of the job: {missed}'
  strangers = sorted(p for p, labels in foreign_pods(job).items()
                     if selects(selector, labels))
  assert not strangers, f'{what} {selector} also selects {strangers}'


def check_policy(policy, job):
  """Raises AssertionError unless `policy` fences `job` as the manifests promise."""
  assert policy['apiVersion'] == 'networking.k8s.io/v1', policy['apiVersion']
  assert policy['kind'] == 'NetworkPolicy'
  # It lands in the namespace the job lands in.
  assert (policy['metadata'].get('namespace') ==
          job['metadata'].get('namespace')), policy['metadata']
  spec = policy['spec']
  assert set(spec) <= {'podSelector', 'policyTypes', 'ingress'}, set(spec)
  # Ingress only: an Egress type without rules would cut DNS and the job's own
  # connections.
  assert spec.get('policyTypes') == ['Ingress'], spec.get('policyTypes')
  check_selects_exactly_the_job(spec['podSelector'], job, 'podSelector')
  rules = spec.get('ingress') or []
  assert rules, 'no ingress rule: the job could not talk to itself'
  admitted_ports = set()
  for rule in rules:
    # A rule without `from` admits every source, one without `ports` every port.
    assert rule.get('from'), f'rule {rule} admits every source'
    assert rule.get('ports'), f'rule {rule} admits every port'
    for peer in rule['from']:
      assert set(peer) == {'podSelector'}, (
          f'peer {peer} admits more than pods of this namespace')
      check_selects_exactly_the_job(peer['podSelector'], job, 'from podSelector')
    for port in rule['ports']:
      assert set(port) <= {'protocol', 'port'}, f'{port}: no ranges'
      assert port.get('protocol', 'TCP') == 'TCP', port
      assert isinstance(port.get('port'), int), f'{port}: a port number'
      admitted_ports.add(port['port'])
  assert admitted_ports == listening_ports(job), (
      f'admits ports {sorted(admitted_ports)}, the roles listen on '
      f'{sorted(listening_ports(job))}')


@pytest.mark.parametrize('path', MANIFESTS, ids=os.path.basename)
def test_the_network_policy_admits_only_the_job_and_only_its_ports(path):
  job, _ = load(path)
  check_policy(load_policy(path), job)


@pytest.mark.parametrize('path', MANIFESTS, ids=os.path.basename)
def test_every_roles_pods_are_labelled_with_the_job(path):
  job, _ = load(path)
  for spec in job['spec']['tfReplicaSpecs'].values():
    labels = spec['template']['metadata']['labels']
    assert labels.get('gorila-tf/job') == job['metadata']['name'], labels
  policy = load_policy(path)
  assert policy['metadata']['name'].startswith(job['metadata']['name'] + '-')
  assert listening_ports(job) == {TF_PORT, TF_PORT + cluster_lib.REVERB_PORT_OFFSET}


# name: (what the refusal says, the change planted in a copy of the policy).
WRONG_POLICIES = {
    'reverb port missing': ('admits ports', lambda p, s, r: r['ports'].pop()),
    'extra port': ('admits ports', lambda p, s, r: r['ports'].append(
        {'protocol': 'TCP', 'port': 8080})),
    'port as a range': ('no ranges', lambda p, s, r: r['ports'][0].update(
        endPort=2299)),
    'udp': ('UDP', lambda p, s, r: r['ports'][0].update(protocol='UDP')),
    'rule without ports': ('every port', lambda p, s, r: r.pop('ports')),
    'rule without from': ('every source', lambda p, s, r: r.pop('from')),
    'second rule open to all': ('every source',
                                lambda p, s, r: s['ingress'].append({})),
    'no ingress rules': ('no ingress rule', lambda p, s, r: s.update(ingress=[])),
    'namespaceSelector in from': ('more than pods of this namespace',
                                  lambda p, s, r: r['from'][0].update(
                                      namespaceSelector={})),
    'extra ipBlock peer': ('more than pods of this namespace',
                           lambda p, s, r: r['from'].append(
                               {'ipBlock': {'cidr': '0.0.0.0/0'}})),
    'from every pod in the namespace': ('from podSelector .* also selects',
                                        lambda p, s, r: r['from'][0].update(
                                            podSelector={})),
    'selects only workers': ('misses pods', lambda p, s, r: s['podSelector'][
        'matchLabels'].update({'training.kubeflow.org/replica-type': 'worker'})),
    'selects no pod': ('misses pods', lambda p, s, r: s['podSelector'][
        'matchLabels'].update({'gorila-tf/job': 'gorila-pong'})),
    'selects every pod': ('also selects',
                          lambda p, s, r: s.update(podSelector={})),
    'egress type without rules': ('Egress', lambda p, s, r: s.update(
        policyTypes=['Ingress', 'Egress'])),
    'other namespace': ('elsewhere', lambda p, s, r: p['metadata'].update(
        namespace='elsewhere')),
}


@pytest.mark.parametrize('name', sorted(WRONG_POLICIES))
def test_a_wrong_policy_is_refused(name):
  path = MANIFESTS[0]
  job, _ = load(path)
  policy = copy.deepcopy(load_policy(path))
  says, change = WRONG_POLICIES[name]
  change(policy, policy['spec'], policy['spec']['ingress'][0])
  with pytest.raises(AssertionError, match=says):
    check_policy(policy, job)


def test_the_other_manifests_policy_is_refused():
  (cpu, _), (gpu, _) = (load(p) for p in MANIFESTS)
  with pytest.raises(AssertionError, match='misses pods'):
    check_policy(load_policy(MANIFESTS[1]), cpu)
  with pytest.raises(AssertionError, match='misses pods'):
    check_policy(load_policy(MANIFESTS[0]), gpu)


@pytest.mark.parametrize('role', sorted(ROLES))
def test_a_role_whose_pods_lack_the_label_is_refused(role):
  job, _ = load(MANIFESTS[0])
  job['spec']['tfReplicaSpecs'][role]['template']['metadata'] = {}
  with pytest.raises(AssertionError, match=f'misses pods .*-{role.lower()}-0'):
    check_policy(load_policy(MANIFESTS[0]), job)
