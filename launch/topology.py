"""Where each task of a local launch runs: loopback, or a host of its own.

Two placements, one cluster shape (N ps, M workers, the chief, an optional
evaluator):

  local      every task on 127.0.0.1, each on a free port pair (TF port and
             Reverb port + 1), all in the launcher's loopback-only network
             namespace (isolation.py);
  emulated   every task on an emulated host (hosts.py): its own network
             namespace and 198.18.0.x address on a virtual bridge, TF on port
             2222 and Reverb on 2223 as on real machines, and optionally a
             CPU share (cgroup quota), a link rate (tbf) and added latency
             (netem, where the kernel has it). TF gRPC and Reverb then run
             across a real network stack, with no shortcut through localhost.

Per-host settings are given per role or per task, e.g.
`--host_cpu=worker=0.5,chief=1 --host_bandwidth_mbit=worker1=100`; a task's
own entry wins over its role's.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Mapping, Optional, Sequence

from gorila_tf import config as config_lib
from gorila_tf import errors
from gorila_tf.launch import hosts as hosts_lib

TF_PORT = 2222  # on an emulated host, as on a real one (Reverb: TF_PORT + 1)
ROLES = ('ps', 'worker', 'chief', 'evaluator')
HOST_OPTIONS = {  # flag name -> HostSpec field
    'host_cpu': 'cpu_cores',
    'host_bandwidth_mbit': 'bandwidth_mbit',
    'host_latency_ms': 'latency_ms',
}


@dataclasses.dataclass(frozen=True)
class TaskSlot:
  """One task of the launch: its log name ('worker1'), TF job and index."""

  name: str
  job: str
  index: int


def task_slots(launch: config_lib.LaunchConfig) -> list[TaskSlot]:
  """The tasks of a launch, in start order: ps, workers, chief, evaluator."""
  slots = [TaskSlot(f'ps{i}', 'ps', i) for i in range(launch.num_ps)]
  slots += [TaskSlot(f'worker{i}', 'worker', i)
            for i in range(launch.num_workers)]
  slots.append(TaskSlot('chief', 'chief', 0))
  if launch.evaluator:
    slots.append(TaskSlot('evaluator', 'evaluator', 0))
  return slots


def parse_host_options(options: Mapping[str, Sequence[str]],
                       slots: Sequence[TaskSlot]) -> list[hosts_lib.HostSpec]:
  """One HostSpec per task from `{flag name: ['role=value', ...]}`.

  Raises:
    ConfigError: naming the bad entry and what is allowed.
  """
  names = {s.name for s in slots}
  per_task: dict[str, dict[str, float]] = {s.name: {} for s in slots}
  for flag_name, entries in options.items():
    field = HOST_OPTIONS[flag_name]
    by_key = {}
    for entry in entries:
      key, sep, text = entry.partition('=')
      key = key.strip()
      if not sep or key not in names | set(ROLES):
        raise errors.ConfigError(
            f'--{flag_name}={entry!r}: expected role=value or task=value; '
            f'allowed names: {", ".join(ROLES)}, {", ".join(sorted(names))}')
      try:
        value = float(text)
      except ValueError:
        value = -1.0
      if not value > 0:
        raise errors.ConfigError(
            f'--{flag_name}={entry!r}: {text!r} is not a number > 0')
      by_key[key] = value
    for slot in slots:  # a task's own entry wins over its role's
      value = by_key.get(slot.name, by_key.get(slot.job))
      if value is not None:
        per_task[slot.name][field] = value
  return [hosts_lib.HostSpec(name=s.name, **per_task[s.name]) for s in slots]


class Placement:
  """Addresses for every task, and how to start a process on its host."""

  description: str

  def cluster(self) -> dict[str, list[str]]:
    raise NotImplementedError

  def preexec(self, slot: TaskSlot) -> Optional[Callable[[], None]]:
    del slot
    return None

  def close(self) -> None:
    pass


class LoopbackPlacement(Placement):
  """Every task on 127.0.0.1, each on a free port (and its Reverb partner)."""

  def __init__(self, slots: Sequence[TaskSlot], pick_ports: Callable[[int], list[int]],
               host: str = '127.0.0.1'):
    training = [s for s in slots if s.job != 'evaluator']
    ports = pick_ports(len(training))
    self._cluster: dict[str, list[str]] = {}
    for slot, port in zip(training, ports):
      self._cluster.setdefault(slot.job, []).append(f'{host}:{port}')
    self.description = f'on {host}'

  def cluster(self) -> dict[str, list[str]]:
    return self._cluster


class EmulatedPlacement(Placement):
  """Every task on an emulated host of its own (see hosts.py)."""

  def __init__(self, slots: Sequence[TaskSlot],
               specs: Sequence[hosts_lib.HostSpec]):
    """Makes one host per task (spec i is slot i's host).

    Raises:
      hosts.HostsError: a host could not be made (one line; nothing is left).
    """
    hosts_lib.cleanup_stale()  # what a SIGKILLed launcher left behind
    self._slots = list(slots)
    self.hosts = hosts_lib.EmulatedHosts(specs)
    self.hosts.start()
    first, last = self.hosts.address(specs[0].name), self.hosts.address(specs[-1].name)
    self.description = (f'on {len(specs)} emulated hosts {first}..{last}'
                        f'{_shaping(specs)}')

  def cluster(self) -> dict[str, list[str]]:
    cluster: dict[str, list[str]] = {}
    for slot in self._slots:
      if slot.job != 'evaluator':  # not part of the training cluster
        cluster.setdefault(slot.job, []).append(
            f'{self.hosts.address(slot.name)}:{TF_PORT}')
    return cluster

  def preexec(self, slot: TaskSlot) -> Optional[Callable[[], None]]:
    return self.hosts.preexec(slot.name)

  def describe(self) -> dict:
    """What a test or a person needs to act on a host (hosts.json)."""
    return {'prefix': self.hosts.prefix, 'fabric_netns': self.hosts.fabric,
            'hosts': {spec.name: {
                'address': self.hosts.address(spec.name),
                'netns': self.hosts.netns(spec.name),
                'fabric_link': f'h{i}',
                'cgroups': self.hosts.cgroups(spec.name),
                **{k: v for k, v in dataclasses.asdict(spec).items()
                   if k != 'name' and v is not None}}
                for i, spec in enumerate(self.hosts.specs)}}

  def write_description(self, log_dir: str) -> None:
    with open(os.path.join(log_dir, 'hosts.json'), 'w') as f:
      json.dump(self.describe(), f, indent=2)

  def close(self) -> None:
    self.hosts.close()


def _shaping(specs: Sequence[hosts_lib.HostSpec]) -> str:
  parts = []
  for field, unit in (('cpu_cores', ' cores'), ('bandwidth_mbit', ' Mbit/s'),
                      ('latency_ms', ' ms')):
    values = {s.name: getattr(s, field) for s in specs if getattr(s, field)}
    if values:
      parts.append(f'{field} ' + ','.join(f'{n}={v:g}' for n, v in values.items()))
  return f' ({"; ".join(parts)})' if parts else ''


def check_emulation() -> None:
  """Raises ConfigError with one line if emulated hosts cannot be made here."""
  why = hosts_lib.check_support()
  if why:
    raise errors.ConfigError(f'--hosts=emulated is not possible here: {why}')


def shared_threads(tasks: int, cores: Optional[int] = None) -> int:
  """Threads per op for `tasks` TensorFlow processes sharing this machine."""
  cores = cores or os.cpu_count() or 1
  return max(1, cores // tasks)
