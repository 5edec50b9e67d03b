r"""The control plane's capacity: what limits a large Gorila cluster, unit by unit.

  python -m gorila_tf.lab.bench --sections=control --out=control.json

A cluster of W bundles and P ps tasks is held up by whichever of three
per-unit costs runs out first. Each is measured apart from the others, so
that a scaling model can multiply them out (docs/scaling.md):

  closures   closures/s one chief schedules and collects, and the chief's
             CPU per closure. Trivial closures (a tf.function returning a
             scalar, no variables), kept in flight as the chief keeps its
             learner closures (bookkeeping.InFlight: a fetch thread per
             closure, wait for whichever finishes first), over 1, 4, 16 and
             32 worker servers in the chief's process, and over 4 worker
             processes. In-process servers run in the chief's process, so
             there the chief's CPU includes the workers' share; the worker
             processes show the chief's alone, and the workers' beside it.
  ps         applied gradients/s and whole-network reads/s one ps task
             sustains, and its CPU per apply and per read, at a CPU share
             of 1, 0.5 and 0.25 core. The ps is the real binary
             (`gorila_tf.train`, task type ps) alone on an emulated host
             (launch/hosts.py: its own network namespace and CFS quota; its
             CPU read from the host's cgroup). It holds the whole network:
             a ps holding 1/k of it (k ps tasks) costs about 1/k per update.
             Two worker servers, in the process of the chief on an uncapped
             host of their own, run closures that only apply a gradient
             made on the worker (no forward or backward pass) through
             optimizers.Optimizer.apply (RMSProp on the ps device, as the
             learner does), or only read the whole online network (the
             learner's replica read); `learner.steps_per_closure` of them
             per closure, as a learner round has.
  publish    the chief's parameter push (broadcast.ParameterPublisher: the
  pulls      one-slot Reverb `variables` table) and the actors' pulls
             (broadcast.ParameterSubscriber.refresh) by 1, 4 and 16
             concurrent pullers (threads of one process): ms per publish,
             ms per pull, bytes per pull (the tensors' payload) and the
             CPU of the chief's Reverb server per pull (its own process).
             The ps read a real publish also makes is the `ps` read above.

How a row reads: closures/s is the ceiling on learner rounds for the whole
cluster (rounds/s = updates/s / steps_per_closure); ps CPU ms per apply
times updates/s is the cores the ps tasks need in all (divided by their
number per ps); server CPU ms per pull times pulls/s (actors x refreshes/s)
is the chief's cost of keeping actors fresh. `ps_busy` is the ps's CPU
used over what its share allows: near 1 the ps was the limit, well below 1
something else was (workers, chief, or other load on the machine).

Every sub-measurement runs for `window_seconds(--seconds)` (a fifth of it,
1 to 15 s); the section takes about 3-5 minutes at the default 30 s.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Optional, Sequence

from gorila_tf.runtime import processes
from gorila_tf import config as config_lib
from gorila_tf.launch import hosts as hosts_lib

WORKER_COUNTS = (1, 4, 16, 32)  # in-process worker servers per measurement
SEPARATE_WORKERS = 4  # worker processes, for the chief's own CPU
PS_SHARES = (1.0, 0.5, 0.25)  # cores of the ps's emulated host
PS_WORKERS = 2  # worker servers that load the ps
PULLERS = (1, 4, 16)  # concurrent parameter pullers
WINDOW_FRACTION = 0.2  # of --seconds, per sub-measurement
MIN_WINDOW_S, MAX_WINDOW_S = 1.0, 15.0
CPU_SAMPLE_PERIOD_S = 0.05  # the ps cgroup's CPU counter, read this often
PS_PORT = 2222  # each emulated host has its own ports: no clash
START_TIMEOUT_S = 180.0  # a ps at 0.25 core imports TensorFlow slowly
NOTES = (
    'closures: "in-process" worker servers share the chief\'s process, so '
    'chief_cpu there includes the workers; "processes" rows show the chief '
    'alone, worker_cpu beside it.',
    'ps: one ps holds the whole network; with k ps tasks each costs ~1/k per '
    'apply and per read. ps_busy = ps CPU / (window x share): near 1 means '
    'the ps was the limit.',
    'pulls: threads of one process; bytes are the tensors\' payload (Reverb '
    'may compress chunks on the wire); server_cpu is the chief\'s Reverb '
    'server process.',
)

# Looked up now, not in a forked child (see launch/hosts.py's preexec).


# ---------------------------------------------------------------- arithmetic


def window_seconds(seconds: float) -> float:
  """Each sub-measurement's length for the bench's --seconds."""
  return min(MAX_WINDOW_S, max(MIN_WINDOW_S, seconds * WINDOW_FRACTION))


def in_flight_for(workers: int, configured: int) -> int:
  """Closures kept in flight: the chief's setting, or 2 per worker if more.

  Two per worker keep each one busy (one running, one queued) however many
  there are; the chief's own `run.max_closures_in_flight` is sized for a
  few bundles.
  """
  return max(configured, 2 * workers)


def per_unit_ms(seconds: Optional[float], units: int) -> Optional[float]:
  """Milliseconds per unit, or None when nothing was measured."""
  if seconds is None or units <= 0:
    return None
  return 1000.0 * seconds / units


def rate(units: int, seconds: float) -> float:
  return units / seconds if seconds > 0 else 0.0


def payload_bytes(shapes: Sequence[Sequence[int]]) -> int:
  """Bytes of one published parameter set: float32 tensors, 2 int64 counts."""
  floats = 0
  for shape in shapes:
    size = 1
    for d in shape:
      size *= int(d)
    floats += size
  return 4 * floats + 2 * 8


def value_at(samples: Sequence[tuple[float, float]], t: float) -> float:
  """A sampled counter's value at time t, linear between samples.

  Args:
    samples: (time, value) pairs in time order, at least one.
    t: clamped to the sampled span.
  """
  if t <= samples[0][0]:
    return samples[0][1]
  for (t0, v0), (t1, v1) in zip(samples, samples[1:]):
    if t <= t1:
      return v0 if t1 == t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)
  return samples[-1][1]


def usage_between(samples: Sequence[tuple[float, float]], start: float,
                  end: float) -> float:
  """How much a sampled counter (e.g. CPU seconds) grew from start to end."""
  return value_at(samples, end) - value_at(samples, start)


def quantile(values: Sequence[float], q: float) -> float:
  """The q-quantile (0..1) of values, nearest rank; 0 if there are none."""
  if not values:
    return 0.0
  ordered = sorted(values)
  return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class CpuSampler:
  """Reads a CPU-seconds counter every CPU_SAMPLE_PERIOD_S in a thread.

  Windows timed in another process can be charged afterwards with
  `between(start, end)`: time.monotonic() is one clock for every process
  on the machine (network namespaces do not change it).
  """

  def __init__(self, read: Callable[[], Optional[float]]):
    self._read = read
    self.samples: list[tuple[float, float]] = []
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._loop, name='cpu-sampler',
                                    daemon=True)

  def _loop(self) -> None:
    while True:
      value = self._read()
      if value is not None:
        self.samples.append((time.monotonic(), value))
      if self._stop.wait(CPU_SAMPLE_PERIOD_S):
        return

  def __enter__(self) -> 'CpuSampler':
    self._thread.start()
    return self

  def __exit__(self, *exc) -> None:
    self._stop.set()
    self._thread.join(timeout=5)

  def between(self, start: float, end: float) -> Optional[float]:
    if not self.samples:
      return None
    return usage_between(self.samples, start, end)


# ------------------------------------------------------------- processes


def _module_argv(module: str, *args: str) -> list[str]:
  return [sys.executable, '-m', module, *args]


def _stop(procs: Sequence[subprocess.Popen]) -> None:
  for proc in procs:
    if proc.poll() is None:
      proc.terminate()
  for proc in procs:
    try:
      proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
      proc.kill()
      proc.wait()


def _put_and_exit(queue, result: dict[str, Any]) -> None:
  """Hands the result over, then exits at once: in-process servers have no
  clean shutdown. The queue's feeder thread is flushed first."""
  queue.put(result)
  queue.close()
  queue.join_thread()
  os._exit(0)  # pylint: disable=protected-access


def _keep_in_flight(schedule: Callable[[], Any], in_flight: int,
                    window_s: float) -> tuple[int, float]:
  """Keeps `in_flight` closures going for window_s, as the chief's loop does.

  Returns:
    (closures whose results came back, seconds from start to the last one).
  """
  from gorila_tf.runtime import bookkeeping  # pylint: disable=g-import-not-at-top
  books = bookkeeping.InFlight(overdue_s=3600.0)
  start = time.monotonic()
  deadline = start + window_s
  done = 0
  while time.monotonic() < deadline:
    while books.waiting() < in_flight:
      books.add(schedule())
    done += len(books.wait_any(timeout_s=0.5))
  done += len(books.wait_all(timeout_s=60.0))
  return done, time.monotonic() - start


# ----------------------------------------------------------- (a) closures


def _start_worker_processes(count: int):
  """A chief task, an in-process ps and `count` worker server processes."""
  from gorila_tf.runtime import cluster as cluster_lib  # pylint: disable=g-import-not-at-top
  ports = cluster_lib.free_port_pairs(2 + count)
  spec = {'chief': [f'localhost:{ports[0]}'], 'ps': [f'localhost:{ports[1]}'],
          'worker': [f'localhost:{p}' for p in ports[2:]]}
  ps_server = cluster_lib.start_server(cluster_lib.make_task(spec, 'ps', 0))
  procs = [subprocess.Popen(
      _module_argv('gorila_tf.lab.bench_control', 'serve', 'worker', str(i),
                   json.dumps(spec)),
      preexec_fn=processes.die_with_parent, stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL) for i in range(count)]
  task = cluster_lib.make_task(spec, 'chief', 0)
  cluster_lib.wait_for_tasks(task, ('worker',), START_TIMEOUT_S)
  return task, procs, ps_server


def _process_cpu_s(pids: Sequence[int]) -> float:
  import psutil  # pylint: disable=g-import-not-at-top
  total = 0.0
  for pid in pids:
    times = psutil.Process(pid).cpu_times()
    total += times.user + times.system
  return total


def _closure_rate(config_name: str, overrides: Sequence[str], workers: int,
                  separate: bool, window_s: float, queue) -> None:
  """Closures/s and CPU per closure over `workers` workers (child process)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from gorila_tf.runtime import ps  # pylint: disable=g-import-not-at-top
  from gorila_tf.tools import inprocess_cluster  # pylint: disable=g-import-not-at-top
  config = config_lib.resolve(config_name, list(overrides))
  procs = []
  if separate:
    task, procs, _ = _start_worker_processes(workers)
  else:
    task, _ = inprocess_cluster.start(num_ps=1, num_workers=workers)
  strategy = ps.make_strategy(task, config.launch.min_shard_bytes)
  coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)

  @tf.function
  def trivial():
    return tf.constant(1)

  for _ in range(2 * workers):  # the function reaches every worker first
    coordinator.schedule(trivial)
  coordinator.join()
  k = in_flight_for(workers, config.run.max_closures_in_flight)
  pids = [p.pid for p in procs]
  chief_cpu, worker_cpu = time.process_time(), _process_cpu_s(pids)
  done, took = _keep_in_flight(lambda: coordinator.schedule(trivial), k, window_s)
  chief_cpu = time.process_time() - chief_cpu
  worker_cpu = _process_cpu_s(pids) - worker_cpu if separate else None
  _stop(procs)
  _put_and_exit(queue, {
      'workers': workers, 'servers': 'processes' if separate else 'in-process',
      'in_flight': k, 'closures': done, 'closures_per_s': rate(done, took),
      'chief_cpu_ms_per_closure': per_unit_ms(chief_cpu, done),
      'worker_cpu_ms_per_closure': per_unit_ms(worker_cpu, done)})


def measure_closures(config_name: str, overrides: Sequence[str],
                     window_s: float, worker_counts: Sequence[int] = WORKER_COUNTS,
                     separate_workers: int = SEPARATE_WORKERS) -> list[dict]:
  """One row per worker count (in-process), then one with worker processes
  (none if separate_workers is 0)."""
  rows = [processes.in_child(_closure_rate, config_name, tuple(overrides), n, False,
                    window_s) for n in worker_counts]
  if separate_workers:
    rows.append(processes.in_child(_closure_rate, config_name, tuple(overrides),
                          separate_workers, True, window_s))
  return rows


# ------------------------------------------------------------------ (b) ps


def _ps_host(share: float) -> str:
  return f'ps-{share:g}'


def _ps_spec(h: hosts_lib.EmulatedHosts, share: float, round_: int) -> dict:
  """Cluster `round_`: the share's ps host; chief and workers on 'chief'.

  Every round has ports of its own on the shared chief host, so a round
  never waits for the last one's ports to be free again.
  """
  base = 2300 + 20 * round_
  chief = h.address('chief')
  return {'chief': [f'{chief}:{base}'],
          'ps': [f'{h.address(_ps_host(share))}:{PS_PORT}'],
          'worker': [f'{chief}:{base + 2 + 2 * i}' for i in range(PS_WORKERS)]}


def _ps_closures(q_net, optimizer, steps: int):
  """(apply, read) closures: `steps` applies, or whole-network reads, each."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from gorila_tf.agent import networks  # pylint: disable=g-import-not-at-top
  shapes = q_net.shapes()

  @tf.function
  def apply_only(scale):
    for i in range(steps):
      # Made on the worker from a run-time value: a distinct tensor per step
      # that cannot be folded into a constant, so each apply sends its own
      # gradient to the ps as a learner's does.
      gradients = [tf.fill(s, scale * (i + 1)) for s in shapes]
      optimizer.apply(networks.split_gradients(gradients, q_net))
    return tf.constant(steps)

  @tf.function
  def read_only():
    total = tf.constant(0.0)
    for _ in range(steps):
      # Each read after the last one's sum: separate reads, never merged.
      with tf.control_dependencies([total]):
        values = q_net.read()
      total += tf.add_n([tf.reduce_sum(v) for v in values])  # on the worker
    return total

  return apply_only, read_only


def _ps_load(config_name: str, overrides: Sequence[str], spec: dict,
             window_s: float) -> dict[str, Any]:
  """The chief of one ps round (run on the 'chief' host by `ps-load`)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from gorila_tf.runtime import cluster as cluster_lib, ps  # pylint: disable=g-import-not-at-top
  from gorila_tf.agent import environments, networks, optimizers  # pylint: disable=g-import-not-at-top
  config = config_lib.resolve(config_name, list(overrides))
  info = environments.env_info(config.env)
  task = cluster_lib.make_task(spec, 'chief', 0)
  servers = [cluster_lib.start_server(cluster_lib.make_task(spec, 'worker', i))
             for i in range(PS_WORKERS)]
  cluster_lib.wait_for_tasks(task, ('ps',), START_TIMEOUT_S)
  strategy = ps.make_strategy(task, config.launch.min_shard_bytes)
  coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
  with strategy.scope():
    q_net = networks.make_q_network(config.network, info)
    optimizer = optimizers.Optimizer(config.learner, q_net.parts())
  steps = config.learner.steps_per_closure
  apply_only, read_only = _ps_closures(q_net, optimizer, steps)
  scale = tf.constant(1e-9)
  for _ in range(2 * PS_WORKERS):
    coordinator.schedule(apply_only, args=(scale,))
    coordinator.schedule(read_only)
  coordinator.join()
  k = 2 * PS_WORKERS
  applied_before = int(optimizer.iterations.numpy())
  apply_start = time.monotonic()
  _, apply_s = _keep_in_flight(
      lambda: coordinator.schedule(apply_only, args=(scale,)), k, window_s)
  applies = int(optimizer.iterations.numpy()) - applied_before
  read_start = time.monotonic()
  closures, read_s = _keep_in_flight(lambda: coordinator.schedule(read_only), k,
                                     window_s)
  del servers
  return {'applies': applies, 'apply_window': [apply_start, apply_start + apply_s],
          'reads': closures * steps, 'read_window': [read_start, read_start + read_s],
          'steps_per_closure': steps, 'in_flight': k}


def _ps_row(share: float, load: dict[str, Any], sampler: CpuSampler) -> dict:
  row: dict[str, Any] = {'cpu_cores': share}
  for what, plural in (('apply', 'applies'), ('read', 'reads')):
    start, end = load[f'{what}_window']
    count, cpu = load[plural], sampler.between(start, end)
    row[f'{plural}_per_s'] = rate(count, end - start)
    row[f'ps_cpu_ms_per_{what}'] = per_unit_ms(cpu, count)
    row[f'ps_busy_{what}'] = (None if cpu is None else
                              cpu / ((end - start) * share))
  return row


def _run_ps_round(h: hosts_lib.EmulatedHosts, share: float, spec: dict,
                  config_name: str, overrides: Sequence[str],
                  window_s: float) -> dict[str, Any]:
  argv = _module_argv('gorila_tf.lab.bench_control', 'ps-load', config_name,
                      json.dumps(list(overrides)), json.dumps(spec), str(window_s))
  with CpuSampler(lambda: h.cpu_usage_s(_ps_host(share))) as sampler:
    chief = h.run_in('chief', argv, preexec_fn=processes.die_with_parent,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
      out, err = chief.communicate(timeout=START_TIMEOUT_S + 4 * window_s + 120)
    except subprocess.TimeoutExpired:
      chief.kill()
      out, err = chief.communicate()
  lines = [l for l in out.splitlines() if l.startswith('RESULT ')]
  if not lines:
    return {'cpu_cores': share, 'error': (err or out)[-400:]}
  return _ps_row(share, json.loads(lines[-1][len('RESULT '):]), sampler)


def measure_ps(config_name: str, overrides: Sequence[str], window_s: float,
               shares: Sequence[float] = PS_SHARES) -> dict[str, Any]:
  """{'rows': one per CPU share} or {'skipped': why} without emulated hosts."""
  why = hosts_lib.check_support()
  if why is not None:
    print(f'[bench] control: ps measurements skipped: {why}', file=sys.stderr)
    return {'skipped': why}
  # Largest share first: the capped ps processes, all started now, have
  # imported TensorFlow by the time their round comes.
  shares = sorted(shares, reverse=True)
  specs = [hosts_lib.HostSpec(_ps_host(s), cpu_cores=s) for s in shares]
  with hosts_lib.EmulatedHosts(specs + [hosts_lib.HostSpec('chief')]) as h, \
       tempfile.TemporaryDirectory(prefix='gorila-bench-control-') as logs:
    clusters = [_ps_spec(h, s, r) for r, s in enumerate(shares)]
    procs, log_files = [], []
    try:
      for share, spec in zip(shares, clusters):
        log = open(os.path.join(logs, f'{_ps_host(share)}.log'), 'w')
        log_files.append(log)
        procs.append(h.run_in(_ps_host(share), _module_argv(
            'gorila_tf.train', f'--config={config_name}',
            *[f'--set={o}' for o in overrides], f'--cluster_spec={json.dumps(spec)}',
            '--task_type=ps', '--task_index=0'),
            preexec_fn=processes.die_with_parent, stdout=log, stderr=subprocess.STDOUT))
      rows = [_run_ps_round(h, s, spec, config_name, overrides, window_s)
              for s, spec in zip(shares, clusters)]
    finally:
      _stop(procs)
      for log in log_files:
        log.close()
  return {'rows': rows}


# ----------------------------------------------------------- (c) publication


def _variables_server(config_name: str, overrides: Sequence[str],
                      window_s: float, ready, stop) -> None:
  """The chief's end (own process): variables table, publisher, publishes."""
  import reverb  # pylint: disable=g-import-not-at-top
  from gorila_tf.runtime import broadcast  # pylint: disable=g-import-not-at-top
  from gorila_tf.agent import environments, networks  # pylint: disable=g-import-not-at-top
  config = config_lib.resolve(config_name, list(overrides))
  net = networks.make_q_network(config.network, environments.env_info(config.env))
  server = reverb.Server([broadcast.make_variables_table(net.shapes())])
  publisher = broadcast.ParameterPublisher(f'localhost:{server.port}', net)
  publisher.publish(0, 0)  # traces the read
  cpu, start, count = time.process_time(), time.monotonic(), 0
  while time.monotonic() < start + window_s:
    publisher.publish(count, count)
    count += 1
  took, cpu = time.monotonic() - start, time.process_time() - cpu
  ready.put({'port': server.port, 'pid': os.getpid(),
             'shapes': [list(s) for s in net.shapes()],
             'publish': {'publishes': count, 'ms_per_publish': per_unit_ms(took, count),
                         'chief_cpu_ms_per_publish': per_unit_ms(cpu, count)}})
  stop.wait()
  server.stop()


def _pull_for(subscriber, start: threading.Barrier, deadline_s: float,
              latencies: list[float], failures: list[int]) -> None:
  start.wait()
  deadline = time.monotonic() + deadline_s
  while time.monotonic() < deadline:
    began = time.monotonic()
    if subscriber.refresh() is None:
      failures.append(1)
    else:
      latencies.append(time.monotonic() - began)


def _pulls(server_pid: int, subscribers, window_s: float) -> dict:
  """`len(subscribers)` threads pulling for window_s; one row."""
  latencies: list[float] = []
  failures: list[int] = []
  barrier = threading.Barrier(len(subscribers) + 1)
  threads = [threading.Thread(target=_pull_for, args=(s, barrier, window_s,
                                                      latencies, failures))
             for s in subscribers]
  for t in threads:
    t.start()
  server_cpu, own_cpu = _process_cpu_s([server_pid]), time.process_time()
  start = time.monotonic()
  barrier.wait()
  for t in threads:
    t.join()
  took = time.monotonic() - start
  server_cpu = _process_cpu_s([server_pid]) - server_cpu
  own_cpu = time.process_time() - own_cpu
  pulls = len(latencies)
  return {'pullers': len(subscribers), 'pulls_per_s': rate(pulls, took),
          'ms_per_pull': 1000 * sum(latencies) / pulls if pulls else None,
          'p90_ms_per_pull': 1000 * quantile(latencies, 0.9),
          'server_cpu_ms_per_pull': per_unit_ms(server_cpu, pulls),
          'puller_cpu_ms_per_pull': per_unit_ms(own_cpu, pulls),
          'failed_pulls': len(failures)}


def _publication(config_name: str, overrides: Sequence[str],
                 puller_counts: Sequence[int], window_s: float, queue) -> None:
  from gorila_tf.runtime import broadcast  # pylint: disable=g-import-not-at-top
  from gorila_tf.agent import environments, networks  # pylint: disable=g-import-not-at-top
  context = multiprocessing.get_context('spawn')
  ready, stop = context.Queue(), context.Event()
  server = context.Process(target=_variables_server,
                           args=(config_name, tuple(overrides), window_s, ready, stop))
  server.start()
  chief = ready.get(timeout=600)
  config = config_lib.resolve(config_name, list(overrides))
  info = environments.env_info(config.env)
  address = f'localhost:{chief["port"]}'
  subscribers = [broadcast.ParameterSubscriber(
      address, networks.make_q_network(config.network, info))
                 for _ in range(max(puller_counts))]
  for s in subscribers:
    s.refresh()  # connects; the first pull is not timed
  rows = [_pulls(chief['pid'], subscribers[:n], window_s)
          for n in puller_counts]
  stop.set()
  server.join(timeout=30)
  shapes = chief['shapes']
  floats = (payload_bytes(shapes) - 16) // 4
  queue.put({  # no TF servers here: this process can end normally
      'network': {'kind': config.network.kind, 'parameters': floats,
                  'bytes': 4 * floats},
      'publish': dict(chief['publish'], bytes_per_publish=payload_bytes(shapes)),
      'pulls': [dict(r, bytes_per_pull=payload_bytes(shapes)) for r in rows]})


def measure_publication(config_name: str, overrides: Sequence[str],
                        window_s: float,
                        puller_counts: Sequence[int] = PULLERS) -> dict[str, Any]:
  """{'network', 'publish', 'pulls': one row per puller count}."""
  return processes.in_child(_publication, config_name, tuple(overrides),
                   tuple(puller_counts), window_s)


# ---------------------------------------------------------------- section

# The printed tables: (key, heading, format) per column.
COLUMNS = {
    'closures': (('workers', 'workers', '{:d}'), ('servers', 'servers', '{}'),
                 ('in_flight', 'in flight', '{:d}'),
                 ('closures_per_s', 'closures/s', '{:,.0f}'),
                 ('chief_cpu_ms_per_closure', 'chief CPU ms/closure', '{:.2f}'),
                 ('worker_cpu_ms_per_closure', 'worker CPU ms/closure', '{:.2f}')),
    'ps': (('cpu_cores', 'ps cores', '{:g}'), ('applies_per_s', 'applies/s', '{:.1f}'),
           ('ps_cpu_ms_per_apply', 'ps CPU ms/apply', '{:.2f}'),
           ('ps_busy_apply', 'busy', '{:.2f}'), ('reads_per_s', 'reads/s', '{:.1f}'),
           ('ps_cpu_ms_per_read', 'ps CPU ms/read', '{:.2f}'),
           ('ps_busy_read', 'busy', '{:.2f}')),
    'publish': (('ms_per_publish', 'ms/publish', '{:.1f}'),
                ('chief_cpu_ms_per_publish', 'chief CPU ms/publish', '{:.1f}'),
                ('bytes_per_publish', 'bytes', '{:,d}')),
    'pulls': (('pullers', 'pullers', '{:d}'), ('pulls_per_s', 'pulls/s', '{:.1f}'),
              ('ms_per_pull', 'ms/pull', '{:.1f}'),
              ('p90_ms_per_pull', 'p90 ms', '{:.1f}'),
              ('server_cpu_ms_per_pull', 'server CPU ms/pull', '{:.2f}'),
              ('puller_cpu_ms_per_pull', 'puller CPU ms/pull', '{:.2f}'),
              ('bytes_per_pull', 'bytes', '{:,d}'),
              ('failed_pulls', 'failed', '{:d}')),
}


def markdown_table(rows: list[dict[str, Any]], columns) -> str:
  """Rows as a markdown table; a missing figure is '-', a failed row its error."""
  lines = ['| ' + ' | '.join(h for _, h, _ in columns) + ' |',
           '|' + '---|' * len(columns)]
  for row in rows:
    if 'error' in row:
      lines.append(f'| error: {" ".join(str(row["error"]).split())[-200:]} |')
      continue
    cells = ['-' if row.get(k) is None else f.format(row[k]) for k, _, f in columns]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def report_lines(values: dict[str, Any]) -> list[str]:
  """The section as bench prints it: a table per measurement, then notes."""
  network = values.get('network') or {}
  lines = [f'[control] {values["window_s"]:g} s per measurement; network '
           f'{network.get("kind", "?")}, {network.get("bytes", 0):,} bytes']
  for name, columns in COLUMNS.items():
    if values.get(name):
      lines += [f'{name}:', markdown_table(values[name], columns)]
  lines += [f'{key}: {values[key]}' for key in ('ps_skipped', 'publication_error')
            if key in values]
  return lines + [f'note: {n}' for n in values.get('notes', [])]


def measure(config_name: str, overrides: Sequence[str],
            seconds: float) -> dict[str, Any]:
  """The bench's `control` section: every measurement above, one result."""
  window_s = window_seconds(seconds)
  publication = measure_publication(config_name, overrides, window_s)
  ps_result = measure_ps(config_name, overrides, window_s)
  result: dict[str, Any] = {
      'window_s': window_s,
      'network': publication.get('network'),
      'closures': measure_closures(config_name, overrides, window_s),
      'ps': ps_result.get('rows', []),
      'publish': [publication['publish']] if 'publish' in publication else [],
      'pulls': publication.get('pulls', []),
      'notes': list(NOTES)}
  if 'skipped' in ps_result:
    result['ps_skipped'] = ps_result['skipped']
  if 'error' in publication:
    result['publication_error'] = publication['error']
  return result


# ------------------------------------------------- processes it starts itself


def _serve(job: str, index: int, spec: dict) -> None:
  """A bare worker (or ps) server: no bundle, no replay, no actors."""
  from gorila_tf.runtime import cluster as cluster_lib  # pylint: disable=g-import-not-at-top
  cluster_lib.start_server(cluster_lib.make_task(spec, job, index)).join()


def main(argv: Sequence[str]) -> int:
  """`serve JOB INDEX SPEC` or `ps-load CONFIG OVERRIDES SPEC WINDOW_S`."""
  if len(argv) == 4 and argv[0] == 'serve':
    _serve(argv[1], int(argv[2]), json.loads(argv[3]))
    return 0
  if len(argv) == 5 and argv[0] == 'ps-load':
    result = _ps_load(argv[1], json.loads(argv[2]), json.loads(argv[3]),
                      float(argv[4]))
    print('RESULT ' + json.dumps(result), flush=True)
    sys.stdout.flush()
    os._exit(0)  # pylint: disable=protected-access
  print(f'usage: {main.__doc__}', file=sys.stderr)
  return 2


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  os.environ.setdefault('GRPC_FAIL_FAST', 'use_caller')
  sys.exit(main(sys.argv[1:]))
