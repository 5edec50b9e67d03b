"""The scaling curve: the Pong cluster on emulated hosts with 1..8 bundles.

Each bundle runs on a host of its own with a fixed CPU share (a cgroup
quota), so adding a bundle adds compute as adding a machine does, until this
machine's cores are full; ps tasks and the chief run on hosts of their own
without a cap. For every point (bundles, ps) the launcher trains for a
warm-up and a measured window, and this module reads:

  frames/s, updates/s          the chief's progress.jsonl (differences)
  closures/s                   learner steps / learner.steps_per_closure
  each task's CPU              its host's cgroup (cpuacct), in cores
  each ps task's bytes/s       its host's link counters (ip -s link)
  replay inserts, samples/s    the bundles' Reverb tables, via the chief
  gradient staleness           mean and percentiles over the window

and names the first bottleneck: the resource closest to its limit (the
bundles' CPU share, a ps or the chief's core, or the machine's cores).
Scaling efficiency = throughput(N) / (N x throughput(1)).

  python -m gorila_tf.lab.bench --sections=scaling
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from typing import Any, Optional, Sequence

from gorila_tf import launch
from gorila_tf.runtime import records as records_lib

BUNDLE_POINTS = ((1, 2), (2, 2), (4, 2), (8, 2))  # (bundles, ps)
PS_POINTS = ((4, 1), (4, 4))  # with (4, 2) above: ps 1, 2, 4 at 4 bundles
START_TIMEOUT_S = 420.0  # TF imports in up to 11 processes, capped workers
# Small warm-up replays, so learning starts soon; the replay ratio, batch
# and network stay the preset's.
QUICK_START = ('replay.min_size=500', 'run.summary_every_s=5')


def cgroup_cpu_s(paths: Sequence[str]) -> Optional[float]:
  """CPU seconds used by a host's tasks, from its cgroup directories."""
  for path in paths:
    usage = os.path.join(path, 'cpuacct.usage')  # cgroup v1
    if os.path.exists(usage):
      with open(usage) as f:
        return int(f.read()) / 1e9
    stat = os.path.join(path, 'cpu.stat')  # cgroup v2
    if os.path.exists(stat):
      with open(stat) as f:
        for line in f:
          key, value = line.split()
          if key == 'usage_usec':
            return int(value) / 1e6
  return None


def link_bytes(netns: str) -> int:
  """Bytes sent plus received on a host's link (its eth0)."""
  out = subprocess.run(['ip', '-n', netns, '-s', '-j', 'link', 'show', 'eth0'],
                       capture_output=True, text=True, check=True).stdout
  stats = json.loads(out)[0]['stats64']
  return int(stats['rx']['bytes']) + int(stats['tx']['bytes'])


def machine_busy_s() -> float:
  """CPU seconds the whole machine spent not idle, from /proc/stat."""
  with open('/proc/stat') as f:
    fields = [int(x) for x in f.readline().split()[1:]]
  idle = fields[3] + fields[4]  # idle + iowait
  return (sum(fields) - idle) / os.sysconf('SC_CLK_TCK')


def snapshot(run_dir: str, placed: dict) -> dict[str, Any]:
  """Counters at one moment: the chief's last record, CPU, link bytes."""
  records = [r for r in records_lib.read_progress(run_dir)
             if 'learners/updates' in r]
  hosts = placed['hosts']
  return {
      'time': time.time(),
      'record': records[-1] if records else {},
      'cpu': {name: cgroup_cpu_s(h['cgroups']) for name, h in hosts.items()},
      'bytes': {name: link_bytes(h['netns']) for name, h in hosts.items()
                if name.startswith('ps')},
      'machine_busy_s': machine_busy_s(),
  }


def rates(first: dict, last: dict, steps_per_closure: int,
          worker_cores: float) -> dict[str, Any]:
  """Per-second figures between two snapshots, and the first bottleneck."""
  span = last['time'] - first['time']
  a, b = first['record'], last['record']
  delta = lambda key: (b.get(key, 0.0) - a.get(key, 0.0)) / span
  steps = sum(delta(k) for k in ('learners/applied_gradients',
                                 'learners/discarded_stale_gradients',
                                 'learners/discarded_outlier_gradients'))
  cores = {name: (last['cpu'][name] - first['cpu'][name]) / span
           for name in last['cpu'] if last['cpu'][name] is not None}
  ps_bytes = {name: (last['bytes'][name] - first['bytes'][name]) / span
              for name in last['bytes']}
  result = {
      'frames_per_s': delta('charts/frames'),
      'updates_per_s': delta('learners/updates'),
      'closures_per_s': steps / steps_per_closure,
      'replay_inserts_per_s': delta('replay/inserted'),
      'replay_samples_per_s': delta('replay/sampled'),
      'chief_cores': cores.get('chief', 0.0),
      'ps_cores': {n: c for n, c in cores.items() if n.startswith('ps')},
      'ps_mbytes_per_s': {n: v / 1e6 for n, v in ps_bytes.items()},
      'ps_applied_updates_per_s': delta('learners/updates'),  # each touches every ps
      'worker_cores': {n: c for n, c in cores.items() if n.startswith('worker')},
      'machine_cores': (last['machine_busy_s'] - first['machine_busy_s']) / span,
      'staleness_mean': b.get('learners/gradient_staleness'),
      'staleness_p50': b.get('learners/gradient_staleness_p50'),
      'staleness_p90': b.get('learners/gradient_staleness_p90'),
      'staleness_p99': b.get('learners/gradient_staleness_p99'),
      'discarded_stale_share': (delta('learners/discarded_stale_gradients')
                                / steps if steps else 0.0),
  }
  result['bottleneck'] = first_bottleneck(result, worker_cores)
  return result


def first_bottleneck(point: dict[str, Any], worker_cores: float,
                     machine_cores: int | None = None) -> str:
  """The resource closest to its limit: bundles, a ps, the chief or the machine."""
  machine_cores = machine_cores or os.cpu_count() or 1
  workers = point['worker_cores'].values()
  use = {
      'bundle CPU share': (sum(workers) / len(workers) / worker_cores
                           if workers else 0.0),
      'chief core': point['chief_cores'],
      'ps core': max(point['ps_cores'].values(), default=0.0),
      f"the machine's {machine_cores} cores": point['machine_cores'] / machine_cores,
  }
  name, level = max(use.items(), key=lambda item: item[1])
  return f'{name} ({level:.0%} used)'


def measure_point(config_name: str, overrides: Sequence[str], bundles: int,
                  num_ps: int, worker_cores: float, warmup_s: float,
                  seconds: float, steps_per_closure: int) -> dict[str, Any]:
  """One cluster: start it, wait for learning plus a warm-up, measure."""
  run_dir = tempfile.mkdtemp(prefix='gorila-scaling-')
  argv = launch.local_command(
      config_name, run_dir, [*QUICK_START, *overrides], '--hosts=emulated',
      f'--num_workers={bundles}', f'--num_ps={num_ps}',
      f'--host_cpu=worker={worker_cores}', '--progress=off',
      f'--max_wall_s={START_TIMEOUT_S + warmup_s + seconds + 60}')
  proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  try:
    placed = _wait_for_learning(run_dir, proc)
    time.sleep(warmup_s)
    first = snapshot(run_dir, placed)
    time.sleep(seconds)
    last = snapshot(run_dir, placed)
  except RuntimeError as e:
    return {'bundles': bundles, 'ps': num_ps, 'error': str(e)}
  finally:
    proc.terminate()
    try:
      proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
      proc.kill()
    shutil.rmtree(run_dir, ignore_errors=True)
  return {'bundles': bundles, 'ps': num_ps, 'worker_cores_cap': worker_cores,
          **rates(first, last, steps_per_closure, worker_cores)}


def _wait_for_learning(run_dir: str, proc: subprocess.Popen) -> dict:
  deadline = time.monotonic() + START_TIMEOUT_S
  hosts_file = os.path.join(run_dir, 'logs', 'hosts.json')
  while time.monotonic() < deadline:
    if proc.poll() is not None:
      raise RuntimeError(f'the launcher exited with status {proc.returncode}')
    records = records_lib.read_progress(run_dir) if os.path.exists(
        os.path.join(run_dir, 'progress.jsonl')) else []
    if records and records[-1].get('learners/updates', 0) > 0:
      with open(hosts_file) as f:
        return json.load(f)
    time.sleep(2.0)
  raise RuntimeError(f'no learning within {START_TIMEOUT_S:.0f} s')


def efficiency(points: list[dict[str, Any]], key: str) -> None:
  """Adds `<key>_efficiency` = value(N) / (N x value(1)) to each point."""
  base = next((p for p in points if p['bundles'] == 1 and key in p), None)
  for p in points:
    if base and key in p and base[key]:
      p[f'{key.removesuffix("_per_s")}_efficiency'] = (
          p[key] / (p['bundles'] * base[key]))


def measure(config_name: str, overrides: Sequence[str], seconds: float,
            worker_cores: float, points: Sequence[tuple[int, int]] = (),
            warmup_s: float = 30.0, steps_per_closure: int = 4) -> dict[str, Any]:
  """Every point of the curve, one after another; returns the table's rows."""
  points = list(points or BUNDLE_POINTS + PS_POINTS)
  rows = []
  for bundles, num_ps in points:
    row = measure_point(config_name, overrides, bundles, num_ps, worker_cores,
                        warmup_s, seconds, steps_per_closure)
    rows.append(row)
    print(f'[bench] scaling {bundles} bundles, {num_ps} ps: '
          f'{row.get("updates_per_s", 0):.1f} updates/s, '
          f'{row.get("frames_per_s", 0):.0f} frames/s, '
          f'{row.get("bottleneck", row.get("error"))}', flush=True)
  for key in ('updates_per_s', 'frames_per_s'):
    efficiency(rows, key)
  return {'worker_cores_cap': worker_cores, 'seconds': seconds,
          'points': rows}
