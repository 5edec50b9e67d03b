"""Emulated hosts (launch/hosts.py) with real namespaces, links and cgroups.

Skipped, with the reason, where check_support() says this machine cannot
make them (not root, no veth/bridge, no cgroup CPU controller).
"""

import atexit
import json
import os
import subprocess
import sys
import time

import pytest

from gorila_tf.runtime import processes
from gorila_tf.launch import hosts as hosts_lib
from gorila_tf.launch.hosts import EmulatedHosts, HostSpec, HostsError

WHY_NOT = hosts_lib.check_support() if sys.platform == 'linux' else 'not Linux'
pytestmark = pytest.mark.skipif(WHY_NOT is not None,
                                reason=f'emulated hosts: {WHY_NOT}')

# Accepts connections one after another on all addresses (as TF's and
# Reverb's servers do); reads each to EOF and answers with the byte count.
SERVER = r'''
import socket, sys
s = socket.socket()
s.bind(('0.0.0.0', 0))
s.listen(8)
print(s.getsockname()[1], flush=True)
while True:
  c, _ = s.accept()
  n = 0
  while True:
    data = c.recv(1 << 16)
    if not data:
      break
    n += len(data)
  c.sendall(str(n).encode())
  c.close()
'''
# Sends N bytes to ADDRESS:PORT, waits for the server's count; one JSON line.
CLIENT = r'''
import json, socket, sys, time
address, port, size, timeout = sys.argv[1:5]
start = time.monotonic()
try:
  c = socket.create_connection((address, int(port)), timeout=float(timeout))
  c.settimeout(60)
  c.sendall(b'x' * int(size))
  c.shutdown(socket.SHUT_WR)
  got = int(c.recv(64))
  print(json.dumps({'ok': got == int(size), 'seconds': time.monotonic() - start}))
except OSError as e:
  print(json.dumps({'ok': False, 'error': type(e).__name__}))
'''
BUSY = 'while True: pass'


def _link_names() -> set[str]:
  out = subprocess.run(['ip', '-o', 'link', 'show'], capture_output=True,
                       text=True, check=True).stdout
  return {line.split(':')[1].strip() for line in out.splitlines()}


def _our_netns(prefix: str) -> list[str]:
  return [n for n in hosts_lib.netns_list() if n.startswith(prefix + '-')]


@pytest.fixture(scope='module')
def root_links():
  return _link_names()


@pytest.fixture(scope='module')
def hosts(root_links):
  del root_links  # taken before the hosts exist
  specs = [HostSpec('a'), HostSpec('b'), HostSpec('c'),
           HostSpec('thin', bandwidth_mbit=8), HostSpec('weak', cpu_cores=0.2)]
  with EmulatedHosts(specs) as h:
    yield h


@pytest.fixture
def procs():
  """Processes a test started; killed and reaped after it."""
  started: list[subprocess.Popen] = []
  yield started
  for p in started:
    if p.poll() is None:
      p.kill()
    p.wait()


def _server(h: EmulatedHosts, host: str, procs) -> int:
  """Starts SERVER on `host`; its port."""
  p = h.run_in(host, [sys.executable, '-c', SERVER], stdout=subprocess.PIPE,
               text=True)
  procs.append(p)
  return int(p.stdout.readline())


def _send(h: EmulatedHosts, host: str, address: str, port: int,
          size: int = 1000, timeout: float = 5.0) -> dict:
  """Runs CLIENT on `host`: sends `size` bytes to address:port."""
  out = subprocess.run(
      [sys.executable, '-c', CLIENT, address, str(port), str(size),
       str(timeout)], preexec_fn=h.preexec(host), capture_output=True,
      text=True, timeout=120, check=True).stdout
  return json.loads(out)


def test_hosts_reach_each_other_by_address_and_nothing_shows_outside(
    hosts, root_links, procs):
  addresses = [hosts.address(s.name) for s in hosts.specs]
  assert len(set(addresses)) == len(addresses)
  assert all(a.startswith('198.18.0.') for a in addresses)
  port = _server(hosts, 'a', procs)
  assert _send(hosts, 'b', hosts.address('a'), port)['ok']
  assert _send(hosts, 'c', hosts.address('a'), port)['ok']
  # Loopback is per namespace: a's server is on a's 127.0.0.1, not b's.
  assert _send(hosts, 'a', '127.0.0.1', port)['ok']
  assert _send(hosts, 'b', '127.0.0.1', port) == {
      'ok': False, 'error': 'ConnectionRefusedError'}
  # No veth end or bridge in the namespace the tests run in...
  assert _link_names() == root_links
  # ...and a host has no route beyond its /24 (no default route).
  routes = subprocess.run(['ip', '-n', hosts.netns('a'), 'route'],
                          capture_output=True, text=True, check=True).stdout
  assert routes.split()[0] == '198.18.0.0/24' and 'default' not in routes


def test_preexec_puts_the_child_in_the_hosts_cgroups_and_netns(hosts, procs):
  p = subprocess.Popen(['sleep', '30'], start_new_session=True,
                       preexec_fn=hosts_lib.chain(processes.die_with_parent,
                                                  hosts.preexec('weak')))
  procs.append(p)
  time.sleep(0.2)
  with open(f'/proc/{p.pid}/cgroup') as f:
    assert f'/{hosts.prefix}/weak\n' in f.read()
  assert hosts.cgroups('weak')
  for path in hosts.cgroups('weak'):
    with open(os.path.join(path, 'cgroup.procs')) as f:
      assert str(p.pid) in f.read().split()
  assert (os.stat(f'/proc/{p.pid}/ns/net').st_ino
          == os.stat(hosts.netns_path('weak')).st_ino)
  assert os.stat(f'/proc/{p.pid}/ns/net').st_ino != os.stat(
      '/proc/self/ns/net').st_ino


def _cpu_seconds(pid: int) -> float:
  with open(f'/proc/{pid}/stat') as f:
    fields = f.read().rsplit(')', 1)[1].split()
  return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def test_cpu_share_holds_a_busy_loop_to_its_quota(hosts, procs):
  p = hosts.run_in('weak', [sys.executable, '-c', BUSY])
  procs.append(p)
  time.sleep(0.5)
  cpu0, usage0, t0 = _cpu_seconds(p.pid), hosts.cpu_usage_s('weak'), \
      time.monotonic()
  time.sleep(2.0)
  cpu1, usage1, t1 = _cpu_seconds(p.pid), hosts.cpu_usage_s('weak'), \
      time.monotonic()
  cores = (cpu1 - cpu0) / (t1 - t0)
  assert 0.1 <= cores <= 0.35, cores
  if usage0 is not None:
    assert abs((usage1 - usage0) - (cpu1 - cpu0)) < 0.1, (usage0, usage1)


def test_bandwidth_limits_both_directions_of_a_hosts_link(hosts, procs):
  mb = 1 << 20
  to_thin = _send(hosts, 'a', hosts.address('thin'), _server(hosts, 'thin',
                                                             procs), 4 * mb)
  from_thin = _send(hosts, 'thin', hosts.address('a'), _server(hosts, 'a',
                                                               procs), 2 * mb)
  free = _send(hosts, 'a', hosts.address('b'), _server(hosts, 'b', procs),
               4 * mb)
  # 8 Mbit/s = 1 MB/s: 4 MiB takes ~4.2 s, 2 MiB ~2.1 s; unshaped, a blink.
  assert to_thin['ok'] and 3.5 <= to_thin['seconds'] <= 8, to_thin
  assert from_thin['ok'] and 1.7 <= from_thin['seconds'] <= 5, from_thin
  assert free['ok'] and free['seconds'] < 1.0, free


def test_a_host_cut_off_is_unreachable_until_its_link_is_back(hosts, procs):
  port = _server(hosts, 'a', procs)
  try:
    hosts.set_link('a', False)
    cut = _send(hosts, 'b', hosts.address('a'), port, timeout=1.5)
    assert cut == {'ok': False, 'error': 'TimeoutError'}
  finally:
    hosts.set_link('a', True)
  deadline = time.monotonic() + 10
  while not (back := _send(hosts, 'b', hosts.address('a'), port))['ok']:
    assert time.monotonic() < deadline, back
    time.sleep(0.2)


def test_latency_is_refused_in_one_line_without_netem():
  h = EmulatedHosts([HostSpec('x', latency_ms=10), HostSpec('y')])
  if hosts_lib.netem_available():
    with h:
      qdiscs = subprocess.run(['tc', '-n', h.netns('x'), 'qdisc'],
                              capture_output=True, text=True).stdout
      assert 'netem' in qdiscs and 'delay 5ms' in qdiscs
    return
  with pytest.raises(HostsError, match='netem') as e:
    h.start()
  assert '\n' not in str(e.value)
  assert not _our_netns(h.prefix)


def _tree_gone(h: EmulatedHosts, cgroup_dirs: list[str]) -> bool:
  return not _our_netns(h.prefix) and not any(
      os.path.exists(d) or os.path.exists(os.path.dirname(d))
      for d in cgroup_dirs)


def test_close_removes_everything_even_with_a_task_left(procs):
  h = EmulatedHosts([HostSpec('p', cpu_cores=0.5), HostSpec('q')])
  h.start()
  dirs = h.cgroups('p') + h.cgroups('q')
  assert len(_our_netns(h.prefix)) == 3 and all(map(os.path.isdir, dirs))
  procs.append(h.run_in('p', ['sleep', '30']))  # a straggler
  time.sleep(0.1)
  h.close()
  assert _tree_gone(h, dirs)
  h.close()  # again: nothing to do, no error


def test_cleanup_stale_removes_a_dead_owners_leftovers(hosts, procs):
  dead = subprocess.Popen(['true'])
  dead.wait()
  h = EmulatedHosts([HostSpec('p', cpu_cores=0.5)],
                    prefix=f'{hosts_lib.PREFIX}{dead.pid}')
  h.start()
  atexit.unregister(h.close)  # as if its owner had been SIGKILLed
  dirs = h.cgroups('p')
  procs.append(h.run_in('p', ['sleep', '30']))
  time.sleep(0.1)
  removed = hosts_lib.cleanup_stale()
  assert f'{h.prefix}-fabric' in removed and f'{h.prefix}-0' in removed
  assert _tree_gone(h, dirs)
  # A live owner's hosts are left alone.
  assert len(_our_netns(hosts.prefix)) == len(hosts.specs) + 1
  assert all(map(os.path.isdir, hosts.cgroups('weak')))
