r"""Emulated hosts: one network namespace, address and CPU share per task.

The picture, for three hosts made by `EmulatedHosts` with prefix `gorila-42`:

    netns gorila-42-0        netns gorila-42-1        netns gorila-42-2
    lo, eth0 198.18.0.1/24   lo, eth0 198.18.0.2/24   lo, eth0 198.18.0.3/24
       |  [tbf egress]          |                        |
       | veth                   | veth                   | veth
    ---h0--[tbf = ingress]------h1-----------------------h2----------------
    |                    br0 (bridge, no address)                          |
    ------------------------- netns gorila-42-fabric -----------------------

    cgroups: <cpu mount>/gorila-42/<host name>   (CFS quota = the CPU share)

Each host is a named network namespace with its own loopback and one veth
link to a bridge. The bridge lives in a namespace of its own (the "fabric")
that has no address, no route and no link to anything else, so the hosts
reach one another and nothing beyond: the only routes they have are their
198.18.0.0/24 link routes (198.18.0.0/15 is set aside for network
benchmarks; no default route is ever made). Nothing is created in the
namespace the caller runs in: every link is made inside the fabric with
`ip -n`, its host end moved straight into the host's namespace.

Why a named fabric rather than the launcher's own network namespace: the
launcher may run in the host's root namespace (where nothing may appear) or
in the loopback-only namespace of isolation.py, which keeps its promise of
"reachable from nowhere" only while it holds no bridge. The launcher never
needs the network to follow a run (it reads the run directory), and a named
fabric can be found and deleted by `cleanup_stale()` after a SIGKILL, where
an anonymous one could not. With emulated hosts isolation.py is not needed
(each host's namespace is already closed), but is harmless: `ip netns add`
works from inside it, as named namespaces are bind mounts in /run/netns.

Tasks are put on a host by `preexec(name)` as `subprocess.Popen`'s
preexec_fn: in the child, before exec, it joins the host's cgroup(s) and
then `setns()`s into the host's network namespace. Compose it with the
launcher's own preexec (die-with-parent) with `chain()`.

Shaping: `bandwidth_mbit` puts a tbf qdisc on both ends of the host's veth
(host side: what it sends; fabric side: what it receives). `latency_ms`
needs the netem qdisc, which some kernels lack (then HostsError says so).
`cpu_cores` is a CFS quota (cgroup v1 `cpu`, or v2 `cpu.max`).

Cleanup: `close()` (also `with`, and atexit as a safety net) removes every
namespace and cgroup; SIGTERM's default action skips atexit, so a caller
that handles SIGTERM must reach `close()` through `with`/`finally`, as the
local launcher's signal handlers do. After a SIGKILL, `cleanup_stale()`
removes what a dead process left (names carry the owner's pid).

Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and the `ip` and `tc` commands.
"""

from __future__ import annotations

import atexit
import ctypes
import dataclasses
import errno
import itertools
import os
import re
import subprocess
import time
from typing import Callable, Optional, Sequence

from absl import logging

PREFIX = 'gorila-'  # every name made here starts with it, then the owner pid
SUBNET = '198.18.0'  # hosts are 198.18.0.1 .. 198.18.0.253, /24
MAX_HOSTS = 253
HOST_DEV = 'eth0'  # the host's end of its veth, inside its namespace
BRIDGE = 'br0'
CFS_PERIOD_US = 100_000
# tbf: a burst of 10 ms at the link's rate, and never under 10 full frames
# (at 8 Mbit/s 10 ms is only ~7 frames), so RPC-sized messages and TCP's
# small bursts pass at line rate without drops, while over any interval
# longer than ~10 ms the rate holds. A queue of 50 ms at the rate (a LAN
# switch buffer's order of magnitude) beyond which packets are dropped and
# TCP backs off, as on a congested real link, instead of queueing for
# seconds. tbf cuts veth's large GSO packets to frames when they exceed the
# burst, so a small burst costs a little CPU but never drops them.
TBF_BURST_S = 0.010
TBF_MIN_BURST_BYTES = 10 * 1514
TBF_QUEUE_MS = 50
NETNS_DIRS = ('/run/netns', '/var/run/netns')  # where `ip netns` mounts them
CLONE_NEWNET = 0x40000000

_STALE_NAME = re.compile(re.escape(PREFIX) + r'(\d+)(?:[.-]|$)')
_HOST_NAME = re.compile(r'[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}')
_instances = itertools.count()
_netem: Optional[bool] = None  # probed once per process
# Looked up now, not in the forked child: preexec_fn must do as little as
# possible between fork and exec (no imports, no dlopen, no locks).
_libc = ctypes.CDLL(None, use_errno=True)
_setns = _libc.setns
_setns.argtypes = (ctypes.c_int, ctypes.c_int)


class HostsError(ValueError):
  """Emulated hosts cannot be made as asked; the message is one line."""


@dataclasses.dataclass(frozen=True)
class HostSpec:
  """One emulated host.

  Attributes:
    name: unique; used in cgroup paths ([A-Za-z0-9_.-], up to 64 chars).
    bandwidth_mbit: rate of the host's link, each direction; None: unshaped.
    cpu_cores: CPU share in cores (0.5 = half a core); None: unlimited.
    latency_ms: added to every round trip through the host's link (half
      on the way out, half on the way in); needs netem. None: none added.
  """
  name: str
  bandwidth_mbit: Optional[float] = None
  cpu_cores: Optional[float] = None
  latency_ms: Optional[float] = None


def _run(argv: Sequence[str]) -> str:
  """Runs a command; returns stdout, or raises HostsError in one line."""
  try:
    done = subprocess.run(list(argv), capture_output=True, text=True,
                          timeout=30)
  except (OSError, subprocess.TimeoutExpired) as e:
    raise HostsError(f'{" ".join(argv)}: {e}') from e
  if done.returncode != 0:
    why = ' '.join(done.stderr.split()) or f'exit status {done.returncode}'
    raise HostsError(f'{" ".join(argv)}: {why}')
  return done.stdout


def _netns_path(netns: str) -> str:
  for directory in NETNS_DIRS:
    path = os.path.join(directory, netns)
    if os.path.exists(path):
      return path
  return os.path.join(NETNS_DIRS[0], netns)


def _netns_exists(netns: str) -> bool:
  return os.path.exists(_netns_path(netns))


def netns_list() -> list[str]:
  """Names of the named network namespaces (`ip netns list`, first word)."""
  return [line.split()[0] for line in _run(['ip', 'netns', 'list']).splitlines()
          if line.strip()]


def _write(path: str, text: str) -> None:
  try:
    with open(path, 'w') as f:
      f.write(text)
  except OSError as e:
    raise HostsError(f'write {text!r} to {path}: {e.strerror or e}') from e


def _read(path: str) -> str:
  with open(path) as f:
    return f.read()


# ---------------------------------------------------------------- cgroups


@dataclasses.dataclass(frozen=True)
class _Hierarchy:
  """A cgroup mount that host cgroups are made in.

  Attributes:
    root: its mount point; host cgroups go in <root>/<prefix>/<host>.
    version: 1 or 2.
    limits: it has the cpu controller (the quota files).
    accounts: it reports the cgroup's CPU time (v1 cpuacct; v2 always).
  """
  root: str
  version: int
  limits: bool
  accounts: bool


def _hierarchies() -> list[_Hierarchy]:
  """The cgroup mounts to use for CPU shares: v1 cpu (+cpuacct), else v2.

  v1 wins where both exist: on a hybrid machine the cpu controller is bound
  to v1 and v2's root lists no controllers. Empty if no CPU controller.
  """
  v1, v2 = [], []
  for line in _read('/proc/self/mounts').splitlines():
    _, mount_point, fstype, options = line.split()[:4]
    options = options.split(',')
    if fstype == 'cgroup' and ('cpu' in options or 'cpuacct' in options):
      v1.append(_Hierarchy(mount_point, 1, 'cpu' in options,
                           'cpuacct' in options))
    elif fstype == 'cgroup2':
      v2.append(mount_point)
  if any(h.limits for h in v1):
    return v1
  for root in v2:
    controllers = _read(os.path.join(root, 'cgroup.controllers')).split()
    if 'cpu' in controllers:
      return [_Hierarchy(root, 2, True, True)]
  return []


def _enable_cpu(directory: str) -> None:
  """v2: lets `directory`'s children have cpu.max (subtree_control +cpu)."""
  control = os.path.join(directory, 'cgroup.subtree_control')
  if 'cpu' not in _read(control).split():
    _write(control, '+cpu')


def _make_cgroup(hierarchy: _Hierarchy, top: str, host: str,
                 cores: Optional[float]) -> str:
  """Makes <top>/<host> (top = <root>/<prefix>) with the CPU quota; its path."""
  if not os.path.isdir(top):
    if hierarchy.version == 2:
      _enable_cpu(hierarchy.root)
    os.mkdir(top)
    if hierarchy.version == 2:
      _enable_cpu(top)
  path = os.path.join(top, host)
  os.mkdir(path)
  if hierarchy.limits:
    quota = -1 if cores is None else max(1000, round(cores * CFS_PERIOD_US))
    if hierarchy.version == 1:
      _write(os.path.join(path, 'cpu.cfs_period_us'), str(CFS_PERIOD_US))
      _write(os.path.join(path, 'cpu.cfs_quota_us'), str(quota))
    else:
      _write(os.path.join(path, 'cpu.max'),
             f'{"max" if quota < 0 else quota} {CFS_PERIOD_US}')
  return path


def _evacuate(path: str, root: str) -> None:
  """Moves every process still in cgroup `path` to the hierarchy's root."""
  for pid in _read(os.path.join(path, 'cgroup.procs')).split():
    try:
      _write(os.path.join(root, 'cgroup.procs'), pid)
    except HostsError:
      pass  # exited meanwhile; rmdir below says if anything is left


def _remove_cgroup_tree(top: str, root: str) -> bool:
  """Empties and removes `top` and its child cgroups; True if all went."""
  if not os.path.isdir(top):
    return True
  children = [os.path.join(top, entry.name) for entry in os.scandir(top)
              if entry.is_dir()]
  ok = True
  for path in children + [top]:
    for attempt in range(20):  # processes may still be exiting or forking
      try:
        _evacuate(path, root)
        os.rmdir(path)
        break
      except FileNotFoundError:
        break
      except OSError as e:
        if e.errno != errno.EBUSY or attempt == 19:
          logging.warning('emulated hosts: cannot remove cgroup %s: %s',
                          path, e.strerror or e)
          ok = False
          break
        time.sleep(0.05)
  return ok


# ---------------------------------------------------------- probing


def check_support() -> Optional[str]:
  """Whether emulated hosts can be made here, by really making some.

  Creates and deletes a scratch namespace with a bridge and a veth pair, and
  a scratch cgroup with a CPU quota.

  Returns:
    None if they can, else one short line: what failed and what is needed.
  """
  scratch = f'{PREFIX}{os.getpid()}.probe'
  try:
    _run(['ip', 'netns', 'add', scratch])
    try:
      _run(['ip', '-n', scratch, 'link', 'add', BRIDGE, 'type', 'bridge'])
      _run(['ip', '-n', scratch, 'link', 'add', 'v0', 'type', 'veth',
            'peer', 'name', 'v1'])
      _run(['ip', '-n', scratch, 'link', 'set', 'v0', 'master', BRIDGE])
    finally:
      subprocess.run(['ip', 'netns', 'del', scratch], capture_output=True)
  except HostsError as e:
    if os.geteuid() != 0:
      return ('needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) to create network '
              'namespaces; run as root or use --hosts=local')
    return (f'cannot make a namespace, veth pair and bridge ({e}); needs '
            'iproute2 and a kernel with veth and bridge')
  return _check_cgroups(scratch)


def _check_cgroups(scratch: str) -> Optional[str]:
  hierarchies = [h for h in _hierarchies() if h.limits]
  if not hierarchies:
    return ('no cgroup CPU controller (needs cgroup v1 "cpu" mounted or '
            'cgroup v2 with "cpu" in cgroup.controllers) for CPU shares')
  top = os.path.join(hierarchies[0].root, scratch)
  try:
    _make_cgroup(hierarchies[0], top, 'probe', 0.5)
  except (OSError, HostsError) as e:
    return (f'cannot make a cgroup with a CPU quota in '
            f'{hierarchies[0].root} ({getattr(e, "strerror", None) or e}); '
            'needs root and a writable cgroup mount')
  finally:
    _remove_cgroup_tree(top, hierarchies[0].root)
  return None


def netem_available() -> bool:
  """Whether this kernel has the netem qdisc (tried on a scratch netns)."""
  global _netem
  if _netem is None:
    scratch = f'{PREFIX}{os.getpid()}.netem'
    try:
      _run(['ip', 'netns', 'add', scratch])
      _run(['tc', '-n', scratch, 'qdisc', 'add', 'dev', 'lo', 'root',
            'netem', 'delay', '1ms'])
      _netem = True
    except HostsError:
      _netem = False
    finally:
      subprocess.run(['ip', 'netns', 'del', scratch], capture_output=True)
  return _netem


# ---------------------------------------------------------- the hosts


def _default_prefix() -> str:
  n = next(_instances)
  return f'{PREFIX}{os.getpid()}' + (f'.{n}' if n else '')


def _check_specs(specs: Sequence[HostSpec]) -> None:
  names = [s.name for s in specs]
  if not specs or len(specs) > MAX_HOSTS:
    raise HostsError(f'between 1 and {MAX_HOSTS} hosts, not {len(specs)}')
  if len(set(names)) != len(names):
    raise HostsError(f'host names must be unique: {names}')
  for spec in specs:
    if not _HOST_NAME.fullmatch(spec.name):
      raise HostsError(f'host name {spec.name!r}: use [A-Za-z0-9_.-], '
                       'up to 64 characters')
    for field in ('bandwidth_mbit', 'cpu_cores', 'latency_ms'):
      value = getattr(spec, field)
      if value is not None and not value > 0:
        raise HostsError(f'host {spec.name}: {field}={value} must be > 0')


def _tbf(mbit: float) -> list[str]:
  rate = mbit * 1e6 / 8  # bytes/s
  burst = max(TBF_MIN_BURST_BYTES, round(rate * TBF_BURST_S))
  return ['tbf', 'rate', f'{round(mbit * 1e6)}bit', 'burst', str(burst),
          'latency', f'{TBF_QUEUE_MS}ms']


def _shape(netns: str, dev: str, spec: HostSpec) -> None:
  """Shapes what `dev` sends: netem (half the latency) over tbf (the rate)."""
  tc = ['tc', '-n', netns, 'qdisc', 'add', 'dev', dev]
  if spec.latency_ms:
    _run(tc + ['root', 'handle', '1:', 'netem', 'delay',
               f'{spec.latency_ms / 2}ms'])
    if spec.bandwidth_mbit:
      _run(tc + ['parent', '1:', 'handle', '10:', *_tbf(spec.bandwidth_mbit)])
  elif spec.bandwidth_mbit:
    _run(tc + ['root', *_tbf(spec.bandwidth_mbit)])


def chain(*fns: Optional[Callable[[], None]]) -> Callable[[], None]:
  """One preexec_fn that calls each of `fns` (None skipped) in order."""
  calls = [fn for fn in fns if fn is not None]

  def run_all() -> None:
    for fn in calls:
      fn()
  return run_all


def _enter_host(procs_files: Sequence[bytes], netns_file: bytes) -> None:
  """In a forked child: join the cgroups, then the network namespace.

  Only os and ctypes calls, nothing that takes a lock or allocates much, as
  the parent may have had other threads at fork. The cgroups come first so
  every thread the task starts later is counted and limited.
  """
  for path in procs_files:
    fd = os.open(path, os.O_WRONLY)
    try:
      os.write(fd, b'0')  # 0 = the writing process itself
    finally:
      os.close(fd)
  fd = os.open(netns_file, os.O_RDONLY | os.O_CLOEXEC)
  try:
    if _setns(fd, CLONE_NEWNET) != 0:
      raise OSError(ctypes.get_errno(), 'setns')
  finally:
    os.close(fd)


class EmulatedHosts:
  """One emulated host per `HostSpec`; a context manager.

  Usage:
    with EmulatedHosts([HostSpec('ps0'), HostSpec('w0', cpu_cores=0.5)]) as h:
      subprocess.Popen(argv, preexec_fn=chain(die_with_parent, h.preexec('w0')))
      ... tasks reach one another at h.address(name) ...
    # everything made is gone here
  """

  def __init__(self, hosts: Sequence[HostSpec], prefix: Optional[str] = None):
    """Checks the specs; makes nothing until `start()`.

    Args:
      hosts: one spec per host; host i gets address 198.18.0.<i+1>.
      prefix: starts every name made (namespaces `<prefix>-<i>`,
        `<prefix>-fabric`, cgroups `<prefix>/<host>`). Default
        `gorila-<pid>[.<n>]`; `cleanup_stale()` recognises only names of
        that form (`gorila-<pid>...`).

    Raises:
      HostsError: bad specs.
    """
    _check_specs(hosts)
    self.specs = list(hosts)
    self.prefix = prefix or _default_prefix()
    self.fabric = f'{self.prefix}-fabric'
    self._index = {spec.name: i for i, spec in enumerate(self.specs)}
    self._netns: list[str] = []  # made so far, for close()
    self._cgroup_tops: list[tuple[str, str]] = []  # (top, hierarchy root)
    self._cgroups: dict[str, list[tuple[_Hierarchy, str]]] = {}

  def __enter__(self) -> 'EmulatedHosts':
    self.start()
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def start(self) -> None:
    """Makes the fabric, the hosts and their cgroups.

    Raises:
      HostsError: a command or cgroup write failed (what was made is removed
        first), latency asked for without netem, or CPU shares without a
        CPU controller.
    """
    if self._netns or self._cgroups:
      raise HostsError(f'{self.prefix}: already started')
    if any(s.latency_ms for s in self.specs) and not netem_available():
      raise HostsError('latency_ms needs the netem qdisc (sch_netem), which '
                       'this kernel lacks; leave latency out here')
    hierarchies = _hierarchies()
    if any(s.cpu_cores for s in self.specs) and not hierarchies:
      raise HostsError('cpu_cores needs a cgroup CPU controller (v1 "cpu" '
                       'or v2 "cpu"); none is mounted here')
    atexit.register(self.close)
    try:
      self._make_fabric()
      for i, spec in enumerate(self.specs):
        self._make_host(i, spec)
        self._make_cgroups(spec, hierarchies)
    except (HostsError, OSError) as e:
      self.close()
      if isinstance(e, HostsError):
        raise
      raise HostsError(f'cgroup {e.filename}: {e.strerror or e}') from e

  def _make_fabric(self) -> None:
    _run(['ip', 'netns', 'add', self.fabric])
    self._netns.append(self.fabric)
    _run(['ip', '-n', self.fabric, 'link', 'add', BRIDGE, 'type', 'bridge'])
    _run(['ip', '-n', self.fabric, 'link', 'set', BRIDGE, 'up'])

  def _make_host(self, i: int, spec: HostSpec) -> None:
    """Host i's namespace and veth: `h<i>` on the bridge, `eth0` inside."""
    netns, port = self.netns(spec.name), f'h{i}'
    _run(['ip', 'netns', 'add', netns])
    self._netns.append(netns)
    fabric = ['ip', '-n', self.fabric, 'link']
    # Made inside the fabric, the host end moved at once: the caller's
    # namespace never sees either end.
    _run(fabric + ['add', port, 'type', 'veth', 'peer', 'name', HOST_DEV,
                   'netns', netns])
    _run(fabric + ['set', port, 'master', BRIDGE])
    _run(fabric + ['set', port, 'up'])
    host = ['ip', '-n', netns]
    _run(host + ['addr', 'add', f'{self.address(spec.name)}/24',
                 'dev', HOST_DEV])
    _run(host + ['link', 'set', HOST_DEV, 'up'])
    _run(host + ['link', 'set', 'lo', 'up'])
    _shape(netns, HOST_DEV, spec)  # what the host sends
    _shape(self.fabric, port, spec)  # what the host receives

  def _make_cgroups(self, spec: HostSpec,
                    hierarchies: Sequence[_Hierarchy]) -> None:
    """The host's cgroup in every CPU hierarchy (cpu, and cpuacct if apart)."""
    made = []
    for h in hierarchies:
      top = os.path.join(h.root, self.prefix)
      if (top, h.root) not in self._cgroup_tops:
        self._cgroup_tops.append((top, h.root))
      made.append((h, _make_cgroup(h, top, spec.name, spec.cpu_cores)))
    self._cgroups[spec.name] = made

  def _spec_index(self, name: str) -> int:
    if name not in self._index:
      raise KeyError(f'no emulated host {name!r}; hosts: {list(self._index)}')
    return self._index[name]

  def netns(self, name: str) -> str:
    """The name of host `name`'s network namespace (for `ip -n`)."""
    return f'{self.prefix}-{self._spec_index(name)}'

  def netns_path(self, name: str) -> str:
    """The file of host `name`'s network namespace (for setns)."""
    return _netns_path(self.netns(name))

  def address(self, name: str) -> str:
    """Host `name`'s IPv4 address, 198.18.0.x."""
    return f'{SUBNET}.{self._spec_index(name) + 1}'

  def cgroups(self, name: str) -> list[str]:
    """The cgroup directories host `name`'s tasks join (empty if none)."""
    return [path for _, path in self._cgroups.get(name, [])]

  def preexec(self, name: str) -> Callable[[], None]:
    """A preexec_fn that puts the child on host `name`.

    The child joins the host's cgroups, then its network namespace. Paths
    are resolved here, in the parent, so the child only opens and writes.
    """
    procs = [os.fsencode(os.path.join(p, 'cgroup.procs'))
             for p in self.cgroups(name)]
    netns_file = os.fsencode(self.netns_path(name))
    return lambda: _enter_host(procs, netns_file)

  def run_in(self, name: str, argv: Sequence[str],
             **popen_kwargs) -> subprocess.Popen:
    """Starts `argv` on host `name` (Popen kwargs pass through)."""
    return subprocess.Popen(
        list(argv), preexec_fn=chain(popen_kwargs.pop('preexec_fn', None),
                                     self.preexec(name)), **popen_kwargs)

  def set_link(self, name: str, up: bool) -> None:
    """Cuts (up=False) or restores host `name`'s link to the bridge.

    Only the fabric end goes down, like a dead switch port: the host keeps
    its address and routes and sees no carrier, packets either way are
    dropped silently, and peers see timeouts rather than errors.
    """
    _run(['ip', '-n', self.fabric, 'link', 'set',
          f'h{self._spec_index(name)}', 'up' if up else 'down'])

  def cpu_usage_s(self, name: str) -> Optional[float]:
    """CPU seconds used so far by host `name`'s tasks, or None if unknown."""
    for h, path in self._cgroups.get(name, []):
      if h.accounts and h.version == 1:
        return int(_read(os.path.join(path, 'cpuacct.usage'))) / 1e9
      if h.accounts:
        for line in _read(os.path.join(path, 'cpu.stat')).splitlines():
          key, value = line.split()
          if key == 'usage_usec':
            return int(value) / 1e6
    return None

  def close(self) -> None:
    """Removes everything made; idempotent, never raises (logs failures).

    Call it after the tasks have stopped. A process still in a host's cgroup
    is moved to the hierarchy's root so the cgroup can go; one still in a
    host's namespace keeps that namespace (not its link) alive until it exits.
    """
    atexit.unregister(self.close)
    # The fabric first: its links go with it, so every host is cut at once.
    for netns in self._netns:
      if not _netns_exists(netns):
        continue
      try:
        _run(['ip', 'netns', 'del', netns])
      except HostsError as e:
        logging.warning('emulated hosts: %s', e)
    self._netns.clear()
    for top, root in self._cgroup_tops:
      _remove_cgroup_tree(top, root)
    self._cgroup_tops.clear()
    self._cgroups.clear()


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    pass
  return True


def _stale(name: str) -> bool:
  match = _STALE_NAME.match(name)
  return bool(match) and not _pid_alive(int(match.group(1)))


def cleanup_stale() -> list[str]:
  """Removes what dead owners left: namespaces and cgroups `gorila-<pid>...`.

  For a launcher that was SIGKILLed (close() never ran). Call it before
  `start()`; names of live processes are never touched.

  Returns:
    What was removed (namespace names and cgroup paths).
  """
  removed = []
  try:
    names = netns_list()
  except HostsError as e:
    logging.warning('emulated hosts: %s', e)
    names = []
  for netns in filter(_stale, names):
    try:
      _run(['ip', 'netns', 'del', netns])
      removed.append(netns)
    except HostsError as e:
      logging.warning('emulated hosts: %s', e)
  for h in _hierarchies():
    for entry in os.scandir(h.root):
      if entry.is_dir() and _stale(entry.name):
        if _remove_cgroup_tree(entry.path, h.root):
          removed.append(entry.path)
  return removed
