r"""A chaos run: random, overlapping faults for D minutes, invariants checked.

  python -m gorila_tf.lab.bench --sections=chaos --config=cartpole \
      --chaos_minutes=30 --chaos_seed=1 --out=chaos.json

Trains a cluster with the local launcher and injects a fault every
`--chaos_every_s` (drawn uniformly from that range, from a seeded RNG: the
schedule is printed and the same seed replays it) from `--chaos_calm_s`
after the launch (training undisturbed first: the pace without faults, in the
same run) until `--chaos_minutes` after it, then lets the run reach its frame
budget. The faults:

  kill_<task>        SIGKILL a worker, a ps, the chief or the evaluator
  pause_bundle       SIGSTOP a worker for 5-60 s, then SIGCONT
  kill_writer        SIGKILL the chief's checkpoint writer (mid-save or not)
  two_at_once        two of the above at the same moment
  restart_launcher   SIGKILL the launcher (its tasks die with it) and start
                     the same command again on the same run directory
  corrupt_checkpoint truncate the newest checkpoint, then SIGKILL the chief
  disk_full          fill the run directory's file system (a tmpfs the chaos
                     run mounts, as root), wait for the run to stop, free it
                     and start the same command again
  cut_link           (emulated hosts) take a worker host's link down 5-60 s

Every fault records what it hit (a pid, a file, a link); a task being
restarted after an earlier fault is waited for, up to TARGET_WAIT_S. Invariants,
sampled every 2 s and checked at the end (a table and JSON, written whatever
stopped the harness; its launchers and their tasks are killed after it):
  harness     the harness itself ran to the end (an exception while
              injecting, waiting or evaluating is a violation, with the table)
  budget      the last launch reaches the frame budget and exits 0
  injected    every scheduled fault hit its target (a fault that found no
              process, checkpoint, writer or link is a violation)
  disk_full   the run stopped on each full disk
  counters    updates and frames never go backwards, except to a checkpoint
              the chief resumed from; a ps or chief fault loses at most
              1.5 checkpoint intervals of updates (2.5 for a corrupt one),
              counted at the rate while training (downtime left out)
  lease       never more than one chief process; the LEASE never names
              another live process while a chief runs, and names the chief
              once it has run LEASE_TAKEOVER_S (until a new chief has
              started, it names its dead predecessor)
  replay      every bundle's replay holds transitions again at the end
  console     no traceback, fatal error or abort on the console
  leftovers   no process of the run, no namespace of its hosts and no
              launcher but the last after it (one that ignored a full disk
              is killed before the command starts again)
  tensorboard the last summary's updates equal the final checkpoint's
  learning    CartPole: the best greedy evaluation of the newest 5 checkpoints
              >= 100. An untrained or reset network scores 9.4; a DQN's
              greedy CartPole score swings from checkpoint to checkpoint
              without faults too (the final one alone 121 and 217 at the end
              of two runs of one schedule; the best of the newest 3 once
              142.8, on CI)
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from typing import Any, Optional

import numpy as np

from gorila_tf import launch
from gorila_tf.runtime import lease
from gorila_tf.runtime import records as records_lib

STARTED = re.compile(r'\[launcher\] started (\w+) \(pid (\d+)\)')
RESUMED = re.compile(r'\[chief\] .* resumed from \S+ at (\d+) updates')
NOISE = ('Traceback (most recent call last)', 'Fatal Python error',
         'terminate called')
KILLABLE = ('worker0', 'worker1', 'ps0', 'ps1', 'chief', 'evaluator')
SIMPLE = ('kill_task', 'pause_bundle', 'kill_writer')
KINDS = (*SIMPLE, 'two_at_once', 'restart_launcher', 'corrupt_checkpoint',
         'disk_full', 'cut_link')
# The learning invariant (CartPole): the best greedy score of the newest
# checkpoints. 10x what an untrained or reset network scores (9.4), and
# below the noisy scores of trained ones (see the module's docstring).
LEARNED_NEWEST = 5
LEARNED_RETURN = 100.0
OVERRIDES = ('run.checkpoint_every_s=20', 'run.summary_every_s=2',
             'run.lease_timeout_s=10', 'run.min_free_disk_mb=1',
             f'run.keep_checkpoints={LEARNED_NEWEST}')


def fill_disk(directory: str) -> str:
  """Writes zeros into directory/filler until its file system is full; the
  filler's path, to free the space again."""
  filler = os.path.join(directory, 'filler')
  with open(filler, 'wb') as f:
    try:
      while True:
        f.write(b'\0' * (1 << 20))
        f.flush()
    except OSError:
      pass
  return filler


# How long a fault waits for its target to be there: a whole start-up of the
# chief, which opens its checkpoint writer ~20 s after a launch on an idle
# 2-core machine and took longer than 30 s in CI with another cluster beside
# it (a kill_writer right after a full disk's relaunch went not injected).
TARGET_WAIT_S = 120.0


class NotInjected(Exception):
  """A scheduled fault found nothing to hit (its message says why)."""


@dataclasses.dataclass
class Fault:
  at_s: float  # seconds after the first launch
  kind: str
  target: str = ''
  duration_s: float = 0.0


CALM_S = 60.0  # training undisturbed before the first fault (CartPole's pace)


def schedule(seed: int, minutes: float, every_s: tuple[float, float],
             kinds: tuple[str, ...], calm_s: float = CALM_S) -> list[Fault]:
  """The seeded fault schedule (the same seed, the same faults), from
  `calm_s` to `minutes` after the launch."""
  rng = random.Random(seed)
  faults, at = [], calm_s  # training first
  while at < minutes * 60:
    kind = rng.choice(kinds)
    if kind == 'two_at_once':
      for _ in range(2):
        faults.append(_simple(rng, at, rng.choice(SIMPLE)))
    else:
      faults.append(_simple(rng, at, kind))
    at += rng.uniform(*every_s)
  return faults


def _simple(rng: random.Random, at: float, kind: str) -> Fault:
  if kind == 'kill_task':
    return Fault(at, 'kill', rng.choice(KILLABLE))
  if kind in ('pause_bundle', 'cut_link'):
    return Fault(at, kind, rng.choice(('worker0', 'worker1')), rng.uniform(5, 60))
  return Fault(at, kind)


class Launch:
  """The launcher running the chaos run's command; its output, parsed."""

  def __init__(self, command: list[str], console: list[str]):
    self.pids: dict[str, int] = {}
    self.resumes: list[tuple[float, int]] = []  # (time, updates resumed at)
    self._console = console
    self.proc = subprocess.Popen(command, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
    self._lines: queue.Queue = queue.Queue()
    threading.Thread(target=self._pump, daemon=True).start()

  def _pump(self) -> None:
    for line in self.proc.stdout:
      self._console.append(line)
      if m := STARTED.search(line):
        self.pids[m.group(1)] = int(m.group(2))
      elif m := RESUMED.search(line):
        self.resumes.append((time.monotonic(), int(m.group(1))))


def children(pid: int) -> list[int]:
  try:
    with open(f'/proc/{pid}/task/{pid}/children') as f:
      return [int(p) for p in f.read().split()]
  except OSError:
    return []


def chief_processes(run_dir: str) -> list[int]:
  """Pids of chief tasks of this run directory now.

  A child the chief is starting (its checkpoint writer, by fork then exec)
  has the chief's command line and environment until its exec: it is the
  chief's own child, not a second chief, and is not counted.
  """
  return without_their_children(chief_like_processes(run_dir))


def without_their_children(pids: list[int]) -> list[int]:
  parents = {p: _stat_fields(p) for p in pids}
  return [p for p, fields in parents.items()
          if fields is None or int(fields[1]) not in pids]


def chief_like_processes(run_dir: str) -> list[int]:
  """Pids with a chief's command line and TF_CONFIG for this run directory."""
  found = []
  for environ in glob.glob('/proc/[0-9]*/environ'):
    pid = int(environ.split('/')[2])
    try:
      with open(f'/proc/{pid}/cmdline', 'rb') as f:
        cmdline = f.read().decode(errors='replace')
      if 'gorila_tf.train' not in cmdline or run_dir not in cmdline:
        continue
      with open(environ, 'rb') as f:
        if b'"type": "chief"' in f.read():
          found.append(pid)
    except OSError:
      continue
  return found


def _stat_fields(pid: int) -> Optional[list[str]]:
  """/proc/<pid>/stat after the command name: state, ppid, ... (None if gone)."""
  try:
    with open(f'/proc/{pid}/stat') as f:
      return f.read().rsplit(')', 1)[1].split()
  except (OSError, IndexError):
    return None


def process_facts(pid: int) -> dict[str, Any]:
  """What /proc says of `pid`: state, parent, start (s after boot), command."""
  fields = _stat_fields(pid)
  if fields is None:
    return {'pid': pid, 'state': 'gone'}
  return {'pid': pid, 'state': fields[0], 'ppid': int(fields[1]),
          'started_s': int(fields[19]) / os.sysconf('SC_CLK_TCK'),
          'cmdline': _cmdline(pid)[:160]}


def _cmdline(pid: int) -> str:
  try:
    with open(f'/proc/{pid}/cmdline', 'rb') as f:
      return f.read().replace(b'\0', b' ').decode(errors='replace')
  except OSError:
    return ''


def run_processes(run_dir: str) -> list[int]:
  pids = []
  for cmdline in glob.glob('/proc/[0-9]*/cmdline'):
    try:
      with open(cmdline, 'rb') as f:
        if run_dir.encode() in f.read():
          pids.append(int(cmdline.split('/')[2]))
    except OSError:
      continue
  return pids


class Chaos:
  """Runs the schedule against a cluster and samples the invariants."""

  def __init__(self, config_name: str, overrides, run_dir: str,
               frames: int, disk: Optional[str], hosts: bool):
    self.run_dir = run_dir
    self.console: list[str] = []
    self.disk = disk
    flags = ['--progress=off', '--max_restarts=20', '--evaluator']
    if hosts:
      flags.append('--hosts=emulated')
    self._command = launch.local_command(
        config_name, run_dir, [*OVERRIDES, *overrides, f'run.max_frames={frames}'],
        *flags)
    self.launches: list[Launch] = []
    self.samples: list[dict] = []
    self.violations: list[str] = []  # the run's, seen while injecting
    self.not_injected: list[str] = []  # scheduled faults that hit nothing
    self.done: list[dict] = []  # each fault: what it hit, or that it did not
    # (pid, start time) of every process a fault killed: two faults at once
    # on one target hit it once, then the next one (restarted), not twice.
    self.killed: set[tuple[int, int]] = set()
    self._stop = threading.Event()

  def start(self) -> Launch:
    self.launches.append(Launch(self._command, self.console))
    return self.launches[-1]

  @property
  def launch(self) -> Launch:
    return self.launches[-1]

  sampler_error: Optional[str] = None  # why sample_forever stopped early

  def sample_forever(self) -> None:
    """Samples every 2 s until stopped. A sample that fails ends it, and
    run_and_check says so as a harness violation: a record without samples
    checks nothing (a rename once made every sample fail, and a short chaos
    run passed on none)."""
    try:
      self._sample_until_stopped()
    except Exception as e:  # pylint: disable=broad-except
      self.sampler_error = f'{type(e).__name__}: {e}'

  def _sample_until_stopped(self) -> None:
    while not self._stop.wait(2.0):
      like = chief_like_processes(self.run_dir)
      chiefs = without_their_children(like)
      holder = None
      try:
        with open(os.path.join(self.run_dir, 'LEASE')) as f:
          holder = json.load(f).get('pid')
      except (OSError, ValueError):
        pass
      records = records_lib.read_progress(self.run_dir)
      last = next((r for r in reversed(records) if 'learners/updates' in r), {})
      self.samples.append({'t': time.monotonic(), 'chiefs': len(chiefs),
                           'chiefs_children': len(like) - len(chiefs),
                           'lease_pid': holder, 'chief_pids': chiefs,
                           'lease_pid_alive': bool(holder) and
                           _live_identity(holder) is not None,
                           # Who they are and whose, when there are two.
                           'chief_facts': [process_facts(p) for p in chiefs]
                           if len(chiefs) > 1 else [],
                           'launchers': [
                               {'pid': l.proc.pid, 'exit': l.proc.poll()}
                               for l in self.launches] if len(chiefs) > 1 else [],
                           'updates': last.get('learners/updates'),
                           'frames': last.get('charts/frames')})

  def inject(self, fault: Fault) -> None:
    """Injects `fault` and records what it hit; one that found nothing to
    hit is recorded as not injected, a violation of its own."""
    try:
      hit = getattr(self, f'_{fault.kind}')(fault)
    except NotInjected as e:
      hit = None
      self.not_injected.append(f'{fault.kind} {fault.target} at '
                               f'{fault.at_s:.0f} s: not injected ({e})'.replace(
                                   '  ', ' '))
    self.done.append({**dataclasses.asdict(fault), 'when': time.monotonic(),
                      'injected': hit is not None, 'hit': hit})

  def _live_pid(self, role: str) -> int:
    """The pid of `role`'s live process: a task being restarted after an
    earlier fault is waited for (the launcher restarts it within seconds),
    up to TARGET_WAIT_S."""
    wait_s = TARGET_WAIT_S
    deadline = time.monotonic() + wait_s
    while True:
      pid = self.launch.pids.get(role)
      if pid and self._untouched(pid):
        return pid
      if time.monotonic() > deadline:
        raise NotInjected(f'no live {role} process in {wait_s:.0f} s')
      time.sleep(0.5)

  def _untouched(self, pid: int) -> bool:
    """Alive, and not a process an earlier fault killed (it may not have
    died yet when the next fault comes)."""
    identity = _live_identity(pid)
    return identity is not None and identity not in self.killed

  def _sigkill(self, pid: int) -> None:
    self.killed.add(_live_identity(pid))
    _signal(pid, signal.SIGKILL)

  def _kill(self, fault: Fault) -> str:
    pid = self._live_pid(fault.target)
    self._sigkill(pid)
    return f'SIGKILL {fault.target} pid {pid}'

  def _pause_bundle(self, fault: Fault) -> str:
    pid = self._live_pid(fault.target)
    _signal(pid, signal.SIGSTOP)
    threading.Timer(fault.duration_s, _signal, (pid, signal.SIGCONT)).start()
    return f'SIGSTOP {fault.target} pid {pid} for {fault.duration_s:.0f} s'

  def _kill_writer(self, fault: Fault) -> str:
    """The chief's checkpoint writer: its child started by multiprocessing."""
    del fault
    deadline = time.monotonic() + TARGET_WAIT_S
    while True:
      chief = self._live_pid('chief')
      writers = [c for c in children(chief)
                 if 'spawn_main' in _cmdline(c) and self._untouched(c)]
      if writers:
        self._sigkill(writers[0])
        return f'SIGKILL checkpoint writer pid {writers[0]} (chief {chief})'
      if time.monotonic() > deadline:
        raise NotInjected(f'the chief (pid {chief}) has no checkpoint writer')
      time.sleep(0.5)

  def _restart_launcher(self, fault: Fault) -> str:
    del fault
    pid = self.launch.proc.pid
    if self.launch.proc.poll() is not None:
      raise NotInjected(f'the launcher (pid {pid}) had already exited')
    self.launch.proc.kill()
    self.launch.proc.wait()
    time.sleep(2)  # its tasks die with it (PR_SET_PDEATHSIG)
    self.start()
    return f'SIGKILL launcher pid {pid}; started again (pid {self.launch.proc.pid})'

  def _corrupt_checkpoint(self, fault: Fault) -> str:
    newest = sorted(glob.glob(os.path.join(self.run_dir, 'checkpoints',
                                           'ckpt-*.data-*')),
                    key=os.path.getmtime)
    if not newest:
      raise NotInjected('no checkpoint to corrupt')
    with open(newest[-1], 'r+b') as f:
      f.truncate(16)
    killed = self._kill(Fault(fault.at_s, 'kill', 'chief'))
    return f'truncated {os.path.basename(newest[-1])}; {killed}'

  def _disk_full(self, fault: Fault) -> str:
    del fault
    if self.disk is None:
      raise NotInjected('the run directory is not on a disk of its own')
    filler = fill_disk(self.disk)
    try:
      self.launch.proc.wait(timeout=180)  # stops: exit 2, one line
      stopped = True
    except subprocess.TimeoutExpired:
      stopped = False
      self.violations.append('disk_full: the run did not stop on a full disk')
      # Never a second launcher beside it on the same run directory (the
      # first 30-minute run had one, and then two chiefs).
      self.stop_launchers()
    os.remove(filler)
    self.start()  # as a person would, once there is space
    return (f'filled {self.disk}; the run '
            f'{"stopped" if stopped else "did NOT stop"}; freed and started again')

  def _cut_link(self, fault: Fault) -> str:
    path = os.path.join(self.run_dir, 'logs', 'hosts.json')
    if not os.path.exists(path):
      raise NotInjected('no emulated hosts (logs/hosts.json)')
    with open(path) as f:
      hosts = json.load(f)
    link = hosts['hosts'][fault.target]['fabric_link']
    fabric = hosts['fabric_netns']
    done = subprocess.run(['ip', '-n', fabric, 'link', 'set', link, 'down'],
                          check=False, capture_output=True, text=True)
    if done.returncode:
      raise NotInjected(f'ip link set {link} down: {done.stderr.strip()}')
    threading.Timer(fault.duration_s, subprocess.run, (
        ['ip', '-n', fabric, 'link', 'set', link, 'up'],), {'check': False}).start()
    return f'link {link} of {fault.target} down for {fault.duration_s:.0f} s'

  def stop_sampling(self) -> None:
    self._stop.set()

  def running_launchers(self) -> list[int]:
    return [l.proc.pid for l in self.launches if l.proc.poll() is None]

  def stop_launchers(self) -> list[int]:
    """SIGKILLs every launcher still running (their tasks die with them)
    and then any task of the run left; the launchers' pids."""
    running = [l for l in self.launches if l.proc.poll() is None]
    for launch_ in running:
      launch_.proc.kill()
      launch_.proc.wait()
    if running:
      time.sleep(2)  # PR_SET_PDEATHSIG
    for pid in run_processes(self.run_dir):
      _signal(pid, signal.SIGKILL)
    return [l.proc.pid for l in running]


def _live_identity(pid: int) -> Optional[tuple[int, int]]:
  """(pid, start time) of a live process (zombies count as gone), or None:
  one process, whatever later reuses its pid. One read of /proc, the
  lease's (`lease.process_state`)."""
  state = lease.process_state(pid)
  return (pid, state[1]) if state is not None and state[0] != 'Z' else None


def _signal(pid: int, signum: int) -> None:
  try:
    os.kill(pid, signum)
  except ProcessLookupError:
    pass


def check(chaos: Chaos, status: Optional[int], checkpoint_every_s: float,
          eval_return: Optional[float], game: str,
          harness: tuple[str, ...] = (), launchers: tuple[int, ...] = ()
          ) -> list[dict]:
  """The invariants' table rows: name, checks made, violations, detail.
  `harness`: what stopped the harness itself (an exception while injecting,
  waiting or evaluating); `launchers`: launchers still running at the end."""
  rows = []

  def row(name, checks, bad, detail=''):
    rows.append({'invariant': name, 'checks': checks, 'violations': len(bad),
                 'detail': detail or '; '.join(b.split('\n')[0] for b in bad[:3]),
                 'examples': bad[:3]})

  row('harness', 1, list(harness))
  row('budget', 1, [] if status == 0 else [
      f'last launch exited {status}' if status is not None
      else 'the last launch did not end (see harness)'])
  injected = sum(1 for d in chaos.done if d['injected'])
  row('injected', len(chaos.done), chaos.not_injected,
      '; '.join([f'{injected} of {len(chaos.done)} scheduled faults hit their '
                 'target', *chaos.not_injected[:3]]))
  stops = sum(1 for d in chaos.done if d['kind'] == 'disk_full')
  row('disk_full', stops, chaos.violations,
      f'{stops} full disks; the run stopped on each' if not chaos.violations
      else '')
  resumes = sorted(u for launch_ in chaos.launches for _, u in launch_.resumes)
  updates = [(s['t'], s['updates']) for s in chaos.samples if s['updates'] is not None]
  rate = _rate(updates)
  allowed = rate * checkpoint_every_s
  bad = []
  for (_, before), (_, after) in zip(updates, updates[1:]):
    if after < before:
      lost = before - after
      ok = any(after >= r for r in resumes) and lost <= 2.5 * allowed + 1
      if not ok:
        bad.append(f'updates {before} -> {after} (allowed {2.5 * allowed:.0f})')
  row('counters', max(len(updates) - 1, 0), bad,
      f'{len(resumes)} resumes; at most {2.5 * allowed:.0f} updates lost each')
  lease_bad = [f'{s["chiefs"]} chiefs at once: {s.get("chief_facts")}; '
               f'launchers {s.get("launchers")}'
               for s in chaos.samples if s['chiefs'] > 1]
  lease_bad += [f'lease names pid {s["lease_pid"]} ({why}), chief is '
                f'{s["chief_pids"]}' for s, why in _lease_elsewhere(chaos.samples)]
  children = sum(1 for s in chaos.samples if s.get('chiefs_children'))
  row('lease', len(chaos.samples), lease_bad,
      f'{children} samples saw a chief\'s child before its exec (not a chief)'
      if children and not lease_bad else '')
  last = next((r for r in reversed(records_lib.read_progress(chaos.run_dir))
               if 'replay/size' in r), {})
  sizes = {k: v for k, v in last.items() if re.match(r'bundles/\d+/replay_size', k)}
  row('replay', max(len(sizes), 1),
      [k for k, v in sizes.items() if not v > 0] if sizes else
      ([] if last.get('replay/size', 0) > 0 else ['replay empty at the end']))
  noisy = ['\n'.join(l.strip()[:160] for l in chaos.console[i:i + 30])
           for i, line in enumerate(chaos.console) if any(n in line for n in NOISE)]
  row('console', len(chaos.console), noisy)
  left = run_processes(chaos.run_dir)
  namespaces = subprocess.run(['ip', 'netns', 'list'], capture_output=True,
                              text=True).stdout if shutil.which('ip') else ''
  leftovers = ([f'processes {left}'] if left else []) + (
      [f'namespaces: {namespaces.strip()}'] if 'gorila-' in namespaces else []) + (
      [f'launchers still running: pids {list(launchers)}'] if launchers else [])
  row('leftovers', 3, leftovers)
  row('tensorboard', 1, _tensorboard_agrees(chaos.run_dir))
  if game == 'CartPole-v1':
    row('learning', 1, [] if eval_return is not None
        and eval_return >= LEARNED_RETURN
        else [f'best greedy evaluation {eval_return} < {LEARNED_RETURN:g}'],
        f'best greedy evaluation of the newest {LEARNED_NEWEST} checkpoints '
        f'{eval_return}')
  return rows


# A chief takes the lease over from its dead predecessor once it has started
# (TensorFlow imported, the cluster reached): seen up to 17 s in a 30-minute
# run. Until then the LEASE still names the dead one.
LEASE_TAKEOVER_S = 30.0


def _lease_elsewhere(samples: list[dict]):
  """(sample, why) where the one chief running is not the lease's holder and
  should be: the holder is another live process, or the chief has run for
  longer than LEASE_TAKEOVER_S."""
  first_seen: dict[int, float] = {}
  for s in samples:
    for pid in s['chief_pids']:
      first_seen.setdefault(pid, s['t'])
    if s['chiefs'] != 1 or not s['lease_pid'] or s['lease_pid'] in s['chief_pids']:
      continue
    age = s['t'] - first_seen[s['chief_pids'][0]]
    if s.get('lease_pid_alive', True):
      yield s, 'a live process'
    elif age > LEASE_TAKEOVER_S:
      yield s, f'gone; the chief has run {age:.0f} s'


RATE_WINDOW_S = 20.0  # >> the 2-s summaries, so their lag does not count


def _rate(updates: list[tuple[float, int]]) -> float:
  """Updates per second while training: the median over RATE_WINDOW_S
  windows in which the count went up and never back (downtime between
  faults left out: averaged over the whole run, it allowed a resume too few
  updates)."""
  rates = []
  for i, (t0, u0) in enumerate(updates):
    j = next((j for j in range(i + 1, len(updates))
              if updates[j][0] - t0 >= RATE_WINDOW_S), None)
    if j is None:
      break
    window = [u for _, u in updates[i:j + 1]]
    if window[-1] > u0 and all(b >= a for a, b in zip(window, window[1:])):
      rates.append((window[-1] - u0) / (updates[j][0] - t0))
  return float(np.median(rates)) if rates else 0.0


def updates_per_s(samples: list[dict], first_fault: float) -> dict[str, float]:
  """The run's pace: before the first fault (the same cluster, undisturbed),
  while training (the median 20-s window that went up: downtime left out),
  and over the whole run from its first update to its last (downtime in:
  what the faults cost)."""
  updates = [(s['t'], s['updates']) for s in samples if s['updates'] is not None]
  trained = [(t, u) for t, u in updates if u > 0]
  whole = 0.0
  if len(trained) > 1 and trained[-1][0] > trained[0][0]:
    whole = (trained[-1][1] - trained[0][1]) / (trained[-1][0] - trained[0][0])
  return {'before_faults': _rate([(t, u) for t, u in updates if t < first_fault]),
          'while_training': _rate(updates), 'whole_run': whole}


def _tensorboard_agrees(run_dir: str) -> list[str]:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = tf.train.latest_checkpoint(os.path.join(run_dir, 'checkpoints'))
  if not path:
    return ['no checkpoint']
  saved = int(tf.train.load_checkpoint(path).get_tensor(
      'optimizer/iterations/.ATTRIBUTES/VARIABLE_VALUE'))
  last = next((r for r in reversed(records_lib.read_progress(run_dir))
               if 'learners/updates' in r), {})
  summarised = last.get('learners/updates')
  return [] if summarised == saved else [
      f'last summary {summarised} updates, final checkpoint {saved}']


def greedy_config(config):
  """The harness's evaluation after the run: 10 greedy episodes, 5 at a
  time, without the evaluator's CPU budget (nothing else runs then; under
  the 0.2-core budget the Pong run's 5 checkpoints took 18 minutes)."""
  return dataclasses.replace(config, eval=dataclasses.replace(
      config.eval, epsilon=0.0, episodes=10, parallel_envs=5, record_frames=0,
      cpu_cores=0.0))


def _evaluate(run_dir: str, newest: int = LEARNED_NEWEST) -> dict[str, float]:
  """Greedy CartPole returns of the newest checkpoints, by checkpoint name."""
  from gorila_tf.agent import environments  # pylint: disable=g-import-not-at-top
  from gorila_tf.runtime import checkpointing, evaluator, run_dir as run_dir_lib  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  config = run_dir_lib.read_config(run_dir)
  state = tf.train.get_checkpoint_state(os.path.join(run_dir, 'checkpoints'))
  if config is None or state is None:
    return {}
  info = environments.env_info(config.env)
  greedy = greedy_config(config)
  returns = {}
  for path in list(state.all_model_checkpoint_paths)[-newest:]:
    try:  # a corrupt_checkpoint fault may have cut one short for good
      q_net, _, _ = evaluator.restore_online_network(path, config, info)
    except checkpointing.UNREADABLE:
      continue
    returns[os.path.basename(path)] = evaluator.evaluate(q_net, greedy, info,
                                                         seed=7).mean
  return returns


def _mount_disk(size_mb: int) -> Optional[str]:
  """A tmpfs for the run directory (root), or None."""
  if os.geteuid() != 0 or shutil.which('mount') is None:
    return None
  disk = tempfile.mkdtemp(prefix='gorila-chaos-disk-')
  done = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size_mb}m',
                         'tmpfs', disk], capture_output=True)
  return disk if done.returncode == 0 else None


def measure(config_name: str, overrides, seed: int, minutes: float,
            every_s: tuple[float, float], frames: int,
            hosts: bool = False, calm_s: float = CALM_S) -> dict[str, Any]:
  """One chaos run; its fault history, invariants and figures."""
  from gorila_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  config = config_lib.resolve(config_name, [*OVERRIDES, *overrides])
  disk = _mount_disk(1024)
  base = disk or tempfile.mkdtemp(prefix='gorila-chaos-')
  run_dir = os.path.join(base, 'run')
  kinds = tuple(k for k in KINDS if (k != 'disk_full' or disk)
                and (k != 'cut_link' or hosts))
  faults = schedule(seed, minutes, every_s, kinds, calm_s)
  chaos = Chaos(config_name, overrides, run_dir, frames, disk, hosts)
  try:  # the record is written whatever stops the harness; nothing is left
    return run_and_check(chaos, config, faults, frames, seed, minutes, every_s)
  finally:
    chaos.stop_launchers()
    if disk:
      subprocess.run(['umount', '-l', disk], check=False)
      try:
        os.rmdir(disk)  # the mount point, empty once unmounted
      except OSError:
        pass


def run_and_check(chaos: Chaos, config, faults: list[Fault], frames: int,
                   seed: int, minutes: float, every_s: tuple[float, float]
                   ) -> dict[str, Any]:
  """Injects the schedule, waits for the run's end, checks the invariants."""
  harness = []
  start = time.monotonic()
  chaos.start()
  sampler = threading.Thread(target=chaos.sample_forever, daemon=True)
  sampler.start()
  status = None
  try:
    for fault in faults:
      time.sleep(max(0.0, start + fault.at_s - time.monotonic()))
      print(f'[chaos] {time.monotonic() - start:6.0f} s  {fault.kind} '
            f'{fault.target} {fault.duration_s:.0f}'.rstrip(), flush=True)
      chaos.inject(fault)
    status = chaos.launch.proc.wait(timeout=frames / 20 + 1800)
  except Exception as e:  # pylint: disable=broad-except
    harness.append(f'injecting or waiting: {type(e).__name__}: {e}')
  finally:
    chaos.stop_sampling()
    time.sleep(3)
  if chaos.sampler_error:
    harness.append(f'the sampler: {chaos.sampler_error}')
  elif not chaos.samples:
    harness.append('the sampler took no sample')
  launchers = chaos.running_launchers()  # killed after the checks (measure)
  run_dir = chaos.run_dir
  try:
    eval_returns = _evaluate(run_dir)
  except Exception as e:  # pylint: disable=broad-except
    eval_returns = {}
    harness.append(f'the learning check: {type(e).__name__}: {e}')
  eval_return = max(eval_returns.values()) if eval_returns else None
  rows = check(chaos, status, config.run.checkpoint_every_s, eval_return,
               config.env.id, tuple(harness), tuple(launchers))
  result = {'seed': seed, 'minutes': minutes, 'every_s': list(every_s),
            'calm_s': faults[0].at_s if faults else None,  # the first fault's
            'frames': frames, 'faults': [dataclasses.asdict(f) for f in faults],
            'history': [{**d, 'when': d['when'] - start} for d in chaos.done],
            'scheduled_by_kind': _count(f.kind for f in faults),
            'faults_by_kind': _count(d['kind'] for d in chaos.done
                                     if d['injected']),
            'launches': len(chaos.launches), 'wall_s': time.monotonic() - start,
            'updates_per_s': updates_per_s(chaos.samples, start + faults[0].at_s
                                           if faults else float('inf')),
            'invariants': rows, 'violations': sum(r['violations'] for r in rows),
            'eval_return': eval_return, 'eval_returns': eval_returns,
            'run_dir': run_dir}
  if result['violations']:
    result['kept'] = _keep_evidence(chaos)
  return result


def _keep_evidence(chaos: Chaos) -> str:
  """A violation's evidence, off the run's disk (unmounted next): the
  launchers' console and the tasks' logs."""
  kept = tempfile.mkdtemp(prefix='gorila-chaos-violation-')
  with open(os.path.join(kept, 'console.txt'), 'w') as f:
    f.writelines(chaos.console)
  with open(os.path.join(kept, 'samples.json'), 'w') as f:
    json.dump(chaos.samples, f)
  logs = os.path.join(chaos.run_dir, 'logs')
  if os.path.isdir(logs):
    shutil.copytree(logs, os.path.join(kept, 'logs'))
  return kept


def _count(kinds) -> dict[str, int]:
  counts: dict[str, int] = {}
  for kind in kinds:
    counts[kind] = counts.get(kind, 0) + 1
  return counts


def table(result: dict[str, Any]) -> str:
  calm_s = result.get('calm_s')  # None: no fault was scheduled
  lines = [f'chaos run: seed {result["seed"]}, faults every '
           f'{result["every_s"][0]:g}-{result["every_s"][1]:g} s from '
           f'{"-" if calm_s is None else f"{calm_s:g}"} s to '
           f'{result["minutes"]:g} min, '
           f'{result["launches"]} launches, faults {result["faults_by_kind"]}',
           '  invariant | checks | violations | detail']
  for r in result['invariants']:
    lines.append(f'  {r["invariant"]} | {r["checks"]} | {r["violations"]} | '
                 f'{r["detail"]}')
  lines.append(f'  {result["violations"]} violations')
  pace = result.get('updates_per_s')
  if pace:
    lines.append(f'  updates/s: {pace["before_faults"]:.1f} before the first '
                 f'fault, {pace["while_training"]:.1f} while training (downtime '
                 f'left out), {pace["whole_run"]:.1f} over the whole run '
                 f'({pace["whole_run"] / max(pace["before_faults"], 1e-9):.2f} '
                 'of the undisturbed pace)')
  if result.get('kept'):
    lines.append(f'  the console, samples and task logs: {result["kept"]}')
  return '\n'.join(lines)
