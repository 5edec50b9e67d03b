"""Which task this process is, where the others are, and how to reach them.

A Gorila cluster is a standard TF_CONFIG cluster:

  {"cluster": {"chief": ["host:port"], "ps": [...], "worker": [...]},
   "task": {"type": "worker", "index": 0}}

`ps` tasks hold the sharded variables, each `worker` task is a Gorila bundle
(learner + replay + actors), the `chief` is the coordinator. An `evaluator`
task is not part of the training cluster; its TF_CONFIG only needs the task.

Besides its TF gRPC port, each worker serves its Reverb replay table, and the
chief serves the parameter/stats tables, on the same host at
`port + REVERB_PORT_OFFSET`.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping, Optional

from gorila_tf import errors

REVERB_PORT_OFFSET = 1  # Reverb port = the task's TF port + this
TASK_TYPES = ('chief', 'ps', 'worker', 'evaluator')
TRAINING_JOBS = ('chief', 'ps', 'worker')


@dataclasses.dataclass(frozen=True)
class Task:
  """This process's place in the cluster."""

  cluster: Mapping[str, tuple[str, ...]]
  type: str
  index: int

  @property
  def training_cluster(self) -> dict[str, list[str]]:
    """The cluster spec without the evaluator (it runs no TF server)."""
    return {job: list(self.cluster[job]) for job in TRAINING_JOBS
            if job in self.cluster}

  @property
  def address(self) -> str:
    return self.cluster[self.type][self.index]

  @property
  def num_workers(self) -> int:
    return len(self.cluster.get('worker', ()))

  @property
  def num_ps(self) -> int:
    return len(self.cluster.get('ps', ()))

  def worker_reverb_addresses(self) -> list[str]:
    return [reverb_address(a) for a in self.cluster['worker']]

  def chief_reverb_address(self) -> str:
    return reverb_address(self.cluster['chief'][0])


def split_address(address: str) -> tuple[str, int]:
  host, sep, port = address.rpartition(':')
  if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
    raise errors.ConfigError(
        f'cluster address {address!r} is not host:port with a port in 1..65535')
  return host, int(port)


def reverb_address(tf_address: str) -> str:
  host, port = split_address(tf_address)
  return f'{host}:{port + REVERB_PORT_OFFSET}'


def parse_tf_config(text: str) -> Task:
  """Parses and checks a TF_CONFIG string; raises ConfigError naming the fault."""
  try:
    data = json.loads(text)
  except json.JSONDecodeError as e:
    raise errors.ConfigError(f'TF_CONFIG is not valid JSON ({e.msg} at '
                             f'char {e.pos}): {text[:80]!r}') from None
  if not isinstance(data, dict):
    raise errors.ConfigError('TF_CONFIG must be a JSON object with "cluster" '
                             'and "task"')
  task = data.get('task')
  if not isinstance(task, dict) or 'type' not in task:
    raise errors.ConfigError('TF_CONFIG has no "task": {"type": ..., '
                             '"index": ...}')
  return make_task(data.get('cluster', {}), task['type'], task.get('index', 0))


def make_task(cluster: Any, task_type: Any, task_index: Any) -> Task:
  """Builds and validates a Task from its parts."""
  if task_type not in TASK_TYPES:
    raise errors.ConfigError(f'task type {task_type!r} does not exist; '
                             f'allowed: {", ".join(TASK_TYPES)}')
  if not isinstance(task_index, int) or isinstance(task_index, bool) or task_index < 0:
    raise errors.ConfigError(f'task index {task_index!r} must be an integer >= 0')
  if not isinstance(cluster, dict):
    raise errors.ConfigError('cluster spec must be a JSON object of job -> '
                             'list of host:port')
  unknown = sorted(set(cluster) - set(TASK_TYPES))
  if unknown:
    raise errors.ConfigError(f'cluster spec has unknown job {unknown[0]!r}; '
                             f'allowed: {", ".join(TASK_TYPES)}')
  jobs = {}
  for job, addresses in cluster.items():
    if not isinstance(addresses, list) or not addresses:
      raise errors.ConfigError(f'cluster job {job!r} must be a non-empty list '
                               'of host:port addresses')
    for a in addresses:
      split_address(str(a))
    jobs[job] = tuple(str(a) for a in addresses)
  if task_type != 'evaluator':
    for job in TRAINING_JOBS:
      if job not in jobs:
        raise errors.ConfigError(f'cluster spec has no {job!r} job; a Gorila '
                                 'cluster needs chief, ps and worker tasks')
    if len(jobs['chief']) != 1:
      raise errors.ConfigError(f'cluster spec has {len(jobs["chief"])} chief '
                               'tasks; allowed: exactly 1')
    if task_index >= len(jobs[task_type]):
      raise errors.ConfigError(
          f'task index {task_index} is out of range for job {task_type!r} with '
          f'{len(jobs[task_type])} task(s); allowed: 0..{len(jobs[task_type]) - 1}')
    seen = {}
    for job, addresses in jobs.items():
      for i, a in enumerate(addresses):
        if a in seen:
          raise errors.ConfigError(f'address {a} is used by both {seen[a]} and '
                                   f'{job}:{i}')
        seen[a] = f'{job}:{i}'
  return Task(cluster=jobs, type=task_type, index=task_index)


def resolve_task(tf_config: Optional[str], cluster_spec: Optional[str],
                 task_type: Optional[str], task_index: int) -> Task:
  """The task from --cluster_spec/--task_type/--task_index, else TF_CONFIG."""
  if cluster_spec or task_type:
    if not (cluster_spec and task_type):
      raise errors.ConfigError('--cluster_spec and --task_type must be given '
                               'together')
    try:
      cluster = json.loads(cluster_spec)
    except json.JSONDecodeError as e:
      raise errors.ConfigError(f'--cluster_spec is not valid JSON ({e.msg}): '
                               f'{cluster_spec[:80]!r}') from None
    return make_task(cluster, task_type, task_index)
  if not tf_config:
    raise errors.ConfigError('no cluster given: set TF_CONFIG or pass '
                             '--cluster_spec and --task_type (or use the '
                             'local launcher: python -m gorila_tf.launch.local)')
  return parse_tf_config(tf_config)


def wait_for_tasks(task: Task, jobs: tuple[str, ...], timeout_s: float) -> None:
  """Waits until every task of `jobs` accepts connections; bounded.

  Raises:
    ConfigError: naming the first task still unreachable after `timeout_s`.
  """
  import socket  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  pending = [(job, i, a) for job in jobs for i, a in enumerate(task.cluster[job])]
  deadline = time.monotonic() + timeout_s
  while pending:
    job, index, address = pending[0]
    host, port = split_address(address)
    try:
      with socket.create_connection((host, port), timeout=2):
        pending.pop(0)
        continue
    except OSError:
      if time.monotonic() > deadline:
        raise errors.ConfigError(
            f'{job}:{index} at {address} is not reachable after {timeout_s:.0f} s '
            '(is it started, and is the address right?)') from None
      time.sleep(1.0)


def check_port_free(address: str, what: str) -> None:
  """Raises ConfigError if this host cannot listen on the address's port."""
  import socket  # pylint: disable=g-import-not-at-top
  _, port = split_address(address)
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    # As gRPC does: a port whose last owner died (TIME_WAIT) is free again.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
      s.bind(('', port))
    except OSError as e:
      raise errors.ConfigError(
          f'port {port} for {what} ({address}) is already in use or not '
          f'allowed ({e.strerror}); free it or choose another port') from None


def _port_free(port: int, host: str) -> bool:
  import socket  # pylint: disable=g-import-not-at-top
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    try:
      s.bind((host, port))
      return True
    except OSError:
      return False


def free_port_pairs(count: int, host: str = '127.0.0.1') -> list[int]:
  """`count` distinct free ports p whose Reverb partner p + REVERB_PORT_OFFSET
  is free too (for a task's TF server and its Reverb server)."""
  import socket  # pylint: disable=g-import-not-at-top
  ports: list[int] = []
  while len(ports) < count:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
      s.bind((host, 0))
      port = s.getsockname()[1]
    pair = port + REVERB_PORT_OFFSET
    taken = {q for p in ports for q in (p, p + REVERB_PORT_OFFSET)}
    if pair < 65536 and not {port, pair} & taken and _port_free(pair, host):
      ports.append(port)
  return ports


def server_config(inter_op_threads: int = 8, intra_op_threads: int = 0):
  """Session config for ps/worker servers.

  On few cores a server with too few inter-op threads can deadlock while
  closures wait on each other's variable reads; give it a few more than cores.
  `intra_op_threads` (0: every core) bounds how many threads one op uses.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.compat.v1.ConfigProto(inter_op_parallelism_threads=inter_op_threads,
                                  intra_op_parallelism_threads=intra_op_threads)


def set_threads(intra_op_threads: int) -> None:
  """This process's TensorFlow op parallelism (before any op runs); 0: default."""
  if intra_op_threads > 0:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)


def start_server(task: Task, intra_op_threads: int = 0):
  """Starts this task's `tf.distribute.Server` (ps or worker)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  check_port_free(task.address, f'{task.type}:{task.index}')
  return tf.distribute.Server(
      tf.train.ClusterSpec(task.training_cluster), job_name=task.type,
      task_index=task.index, protocol='grpc',
      config=server_config(intra_op_threads=intra_op_threads), start=True)
