r"""Local launcher: a whole Gorila cluster on this machine, over loopback.

Starts N ps tasks, M worker tasks (bundles), the chief and optionally an
evaluator as child processes of this one, each running `gorila_tf.train` with
its own TF_CONFIG on 127.0.0.1, inside a network namespace of their own that
has only a loopback interface (see isolation.py). Every child's output is
shown with its role as a prefix and saved to <run_dir>/logs/<role>.log.

Faults: a worker or evaluator that dies is restarted; a ps that dies is
restarted together with the chief (ParameterServerStrategy cannot go on
without it), and the chief resumes from the latest checkpoint; a chief that
dies is restarted and resumes. A task that exits with status 2 (refused
input) or 4 (NaN/inf) is not restarted, and neither is one that failed more
than --max_restarts times: the run stops.

A run directory has one owner (lease.py): the launcher refuses, before it
creates anything there, a run directory whose chief's lease is live, and a
second chief is refused with status 2. The console leaves out known noise
(noise.py), which stays in the logs.

Exit status: 0 done; 1 a task failed for good; 2 bad input; 3 --max_wall_s
reached; 4 numerical fault; 130 interrupted (Ctrl-C/SIGTERM). Children die
with the launcher even if it is killed (PR_SET_PDEATHSIG).

  python -m gorila_tf.launch.local --config=cartpole
  python -m gorila_tf.launch.local --config=pong --num_workers=2 \
      --set=run.max_frames=2000000 --run_dir=runs/pong1
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from typing import Callable, Optional, Sequence

from absl import flags

from gorila_tf.runtime import processes
from gorila_tf import command
from gorila_tf import config as config_lib
from gorila_tf import errors
from gorila_tf import exit_codes
from gorila_tf.launch import hosts as hosts_lib
from gorila_tf.launch import isolation
from gorila_tf.launch import noise
from gorila_tf.launch import progress
from gorila_tf.launch import topology
from gorila_tf.runtime import cluster as cluster_lib
from gorila_tf.runtime import lease as lease_lib
from gorila_tf.runtime import run_dir as run_dir_lib

FLAGS = flags.FLAGS


def define_flags():
  """Defines the command's flags, at run time: importing registers none."""
  flags.DEFINE_string('config', 'pong', 'Preset name from configs/.')
  flags.DEFINE_multi_string('set', [], 'Override, section.field=value (repeatable).')
  flags.DEFINE_string('run_dir', None, 'Run directory; default runs/<game>__<preset>'
                      '__<seed>__<time>. An existing one is resumed.')
  flags.DEFINE_integer('num_ps', None, 'Parameter-server tasks (default: config).')
  flags.DEFINE_integer('num_workers', None, 'Bundles (default: config).')
  flags.DEFINE_bool('evaluator', None, 'Start an evaluator task (default: config).')
  flags.DEFINE_enum('topology', 'cluster', ['cluster', 'single'], 'cluster: ps, '
                    'workers and chief as processes of their own; single: the '
                    'agent in this one process (actors, replay and learner; no '
                    'servers but its replay table), to debug or take a quick look.')
  flags.DEFINE_float('max_wall_s', None, 'Stop training after this many seconds '
                     '(exit status 3); an evaluator then scores the last '
                     'checkpoint before the launcher exits (Ctrl-C skips it).')
  flags.DEFINE_integer('max_restarts', 5, 'Restarts allowed per task before the '
                       'run is stopped.')
  flags.DEFINE_enum('progress', 'auto', progress.MODES, 'Progress line: live '
                    '(redrawn in place), lines (a plain line every '
                    '--progress_every_s), auto (live on a terminal, else lines), off.')
  flags.DEFINE_float('progress_every_s', 30.0, 'Seconds between plain progress '
                     'lines (the live line is redrawn every second).')
  flags.DEFINE_bool('isolate_network', True, 'Run the cluster in a loopback-only '
                    'network namespace (servers unreachable from other hosts).')
  flags.DEFINE_enum('hosts', 'local', ['local', 'emulated'], 'local: every task '
                    'on 127.0.0.1; emulated: every task on an emulated host of '
                    'its own (network namespace, 198.18.0.x address on a virtual '
                    'bridge, optional CPU share and link rate; needs root).')
  flags.DEFINE_list('host_cpu', [], 'Emulated hosts: CPU share in cores per role '
                    'or task, e.g. worker=0.5,chief=1,worker1=0.25.')
  flags.DEFINE_list('host_bandwidth_mbit', [], 'Emulated hosts: link rate in '
                    'Mbit/s each way, per role or task, e.g. worker=100.')
  flags.DEFINE_list('host_latency_ms', [], 'Emulated hosts: added round-trip '
                    'latency per role or task (needs the netem qdisc).')


HOST = '127.0.0.1'
STOP_GRACE_S = 10.0  # seconds a task has to exit after SIGTERM
CHIEF_GRACE_S = 60.0  # the chief finishes its closures and checkpoints first
RESTART_DELAY_S = 1.0
CONSOLE = progress.Console()  # replaced in main() by the --progress choice


def say(message: str) -> None:
  """A launcher line, drawn above the live progress line if there is one."""
  CONSOLE.log(message)


class TaskProcess:
  """One task, (re)started as a child, its output pumped to stdout and a log."""

  def __init__(self, role: str, task_type: str, index: int,
               cluster: dict[str, list[str]], args: Sequence[str], log_dir: str,
               on_host: Optional[Callable[[], None]] = None):
    """Starts the task; `on_host` (in the child) puts it on its emulated host."""
    self.role = role
    self._preexec = hosts_lib.chain(processes.die_with_parent, on_host)
    self.task_type = task_type
    self.restarts = 0
    self.started_at = 0.0
    self._args = list(args)
    self._env = dict(os.environ)
    self._env['TF_CONFIG'] = json.dumps(
        {'cluster': cluster, 'task': {'type': task_type, 'index': index}})
    self._env['GRPC_FAIL_FAST'] = 'use_caller'
    self._env['PYTHONUNBUFFERED'] = '1'
    log_path = os.path.join(log_dir, f'{role}.log')
    self._log = open(log_path, 'a')
    self._console_filter = noise.ConsoleFilter(role, log_path)
    self._pumps: list[threading.Thread] = []
    self.process: subprocess.Popen = None  # type: ignore[assignment]
    self.start()

  def start(self) -> None:
    self.process = subprocess.Popen(
        [sys.executable, '-m', 'gorila_tf.train', *self._args],
        env=self._env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,
        preexec_fn=self._preexec)
    self.started_at = time.monotonic()
    pump = threading.Thread(target=self._copy_output, args=(self.process,),
                            daemon=True)
    pump.start()
    self._pumps.append(pump)
    say(f'[launcher] started {self.role} (pid {self.process.pid})')

  def restart(self) -> None:
    self.restarts += 1
    self.start()

  def _copy_output(self, process: subprocess.Popen) -> None:
    """Every line to the task's log; to the console unless it is known noise
    (launch/noise.py), which is counted there every few minutes instead."""
    for raw in process.stdout:
      line = raw.decode(errors='replace').rstrip('\n')
      self._write_log(line)
      if self._console_filter.shows(line):
        CONSOLE.log(f'[{self.role}] {line}')
      summary = self._console_filter.summary()
      if summary:
        say(summary)

  def _write_log(self, line: str) -> None:
    """Appends to the task's log; a full disk loses the log's lines (said
    once), never the console's or the task."""
    if self._log is None:
      return
    try:
      self._log.write(line + '\n')
      self._log.flush()
    except OSError as e:
      say(f'[launcher] cannot write {self._log.name} ({e.strerror}): '
          f'{self.role}\'s lines go to the console only from now on')
      self._log = None

  def poll(self) -> Optional[int]:
    return self.process.poll()

  def signal(self, signum: int) -> None:
    """Signals the task's whole process group, if it is still running."""
    if self.process.poll() is None:
      try:
        os.killpg(self.process.pid, signum)
      except ProcessLookupError:
        pass

  def kill_and_wait(self) -> None:
    self.signal(signal.SIGKILL)
    self.process.wait()

  def close(self) -> None:
    for pump in self._pumps:
      pump.join(timeout=5)
    if self._log is not None:
      try:
        self._log.close()
      except OSError:
        pass  # its last lines did not fit on a full disk
    summary = self._console_filter.summary(force=True)
    if summary:
      say(summary)


def stop_all(tasks: Sequence[TaskProcess]) -> None:
  """Stops the chief first (it checkpoints), then every other task.

  Each gets SIGTERM, then SIGKILL if it is still there after the grace period.
  The chief goes first so that its last checkpoint can still read the ps
  variables and finish its learner closures on the workers.
  """
  chief = [t for t in tasks if t.task_type == 'chief']
  others = [t for t in tasks if t.task_type != 'chief']
  for group, grace in ((chief, CHIEF_GRACE_S), (others, STOP_GRACE_S)):
    for t in group:
      t.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for t in group:
      try:
        t.process.wait(timeout=max(0.0, deadline - time.monotonic()))
      except subprocess.TimeoutExpired:
        say(f'[launcher] {t.role} was still running {grace:.0f} s after '
            'SIGTERM; killed')
        t.kill_and_wait()
  for t in tasks:
    t.close()


def evaluate_last_checkpoint(tasks: Sequence[TaskProcess],
                             stop: threading.Event) -> None:
  """After --max_wall_s: stops training, then lets the evaluator score the
  checkpoint the chief wrote on its way out (without its CPU budget: nothing
  else runs now) and waits for it; Ctrl-C or SIGTERM skips it."""
  evaluator = next((t for t in tasks if t.task_type == 'evaluator'
                    and t.poll() is None), None)
  if evaluator is None:
    return
  stop_all([t for t in tasks if t is not evaluator])
  say('[launcher] training stopped; the evaluator scores the last checkpoint '
      '(Ctrl-C skips it)')
  # To the evaluator alone, not its process group.
  os.kill(evaluator.process.pid, run_dir_lib.FINAL_EVALUATION_SIGNAL)
  wait_unless_stopped(evaluator, stop)


def start_cluster(config: config_lib.GorilaConfig, run_dir: str,
                  train_args: Sequence[str],
                  placement: topology.Placement) -> list[TaskProcess]:
  """Starts every task of the launch where `placement` puts it."""
  cluster = placement.cluster()
  log_dir = os.path.join(run_dir, 'logs')
  os.makedirs(log_dir, exist_ok=True)
  return [TaskProcess(slot.name, slot.job, slot.index, cluster, train_args,
                      log_dir, on_host=placement.preexec(slot))
          for slot in topology.task_slots(config.launch)]


def make_placement(config: config_lib.GorilaConfig,
                   run_dir: str) -> topology.Placement:
  """Loopback ports, or emulated hosts (`--hosts`); raises ConfigError."""
  slots = topology.task_slots(config.launch)
  options = {name: getattr(FLAGS, name) for name in topology.HOST_OPTIONS}
  if FLAGS.hosts == 'local':
    given = [f'--{name}' for name, values in options.items() if values]
    if given:
      raise errors.ConfigError(f'{", ".join(given)} need --hosts=emulated')
    return topology.LoopbackPlacement(slots, cluster_lib.free_port_pairs, HOST)
  specs = topology.parse_host_options(options, slots)
  topology.check_emulation()
  try:
    placement = topology.EmulatedPlacement(slots, specs)
  except hosts_lib.HostsError as e:
    raise errors.ConfigError(f'emulated hosts: {e}') from None
  log_dir = os.path.join(run_dir, 'logs')
  os.makedirs(log_dir, exist_ok=True)
  placement.write_description(log_dir)
  return placement


def plays_line(row: dict) -> str:
  """The closing line of a run that reached run.stop_at_eval_return."""
  minutes = row.get('wall_time_s')
  when = f', {minutes / 60:.1f} min of training' if minutes is not None else ''
  policy = row.get('policy', '')
  return (f'[launcher] the agent plays: evaluation {row["mean"]:+.1f} +- '
          f'{row["stderr"] or 0:.1f} over {row["episodes"]} episodes at '
          f'{row["frames"]:,} frames, {row["updates"]:,} updates{when}; its '
          f'policy is in {policy}; watch it: gorila-play --policy={policy} '
          f'--out=play.gif')


def say_if_plays(run_dir: str) -> bool:
  """Says the closing line if the run's agent reached its target return."""
  plays = run_dir_lib.read_plays(run_dir)
  if plays:
    say(plays_line(plays))
  return plays is not None


def wait_unless_stopped(task: TaskProcess, stop: threading.Event) -> None:
  """Returns when `task` has exited, or at once when `stop` is set."""
  while task.poll() is None and not stop.wait(0.5):
    pass


class Supervisor:
  """Watches the tasks, restarts the failed ones, decides when the run ends."""

  def __init__(self, tasks: Sequence[TaskProcess], max_restarts: int,
               run_dir: str):
    self._tasks = list(tasks)
    self._run_dir = run_dir
    self._max_restarts = max_restarts
    self._chief = next(t for t in tasks if t.task_type == 'chief')
    self._evaluator = next((t for t in tasks if t.task_type == 'evaluator'), None)

  def run(self, stop: threading.Event, max_wall_s: Optional[float]) -> int:
    """Returns the launcher's exit status."""
    start = time.monotonic()
    while not stop.wait(0.5):
      if self._chief.poll() == 0:
        return self._finish(stop)
      for t in self._tasks:
        code = t.poll()
        if code is not None and not (t is self._evaluator and code == 0):
          status = self._handle_exit(t, code)
          if status is not None:
            return status
      if max_wall_s is not None and time.monotonic() - start > max_wall_s:
        say(f'[launcher] --max_wall_s={max_wall_s} reached; stopping the run')
        return exit_codes.WALL
    say('[launcher] interrupted; stopping the run')
    return exit_codes.INTERRUPTED

  def _finish(self, stop: threading.Event) -> int:
    if self._evaluator is not None:
      say('[launcher] training done; waiting for the final evaluation')
      wait_unless_stopped(self._evaluator, stop)
    if not say_if_plays(self._run_dir):
      say('[launcher] training done')
    return exit_codes.OK

  def _handle_exit(self, task: TaskProcess, code: int) -> Optional[int]:
    """Restarts `task` (and the chief after a ps), or returns a final status."""
    lived = time.monotonic() - task.started_at
    say(f'[launcher] {task.role} exited with status {code} after {lived:.1f} s')
    if code in exit_codes.FINAL:
      say(f'[launcher] {task.role} cannot be helped by a restart; stopping '
          'the run')
      return code
    if task.restarts >= self._max_restarts:
      say(f'[launcher] {task.role} failed {task.restarts + 1} times; '
          'stopping the run')
      return exit_codes.FAILED
    time.sleep(RESTART_DELAY_S)
    say(f'[launcher] restarting {task.role} ({task.restarts + 1} of '
        f'{self._max_restarts})')
    task.restart()
    if task.task_type == 'ps' and self._chief.poll() is None:
      # The strategy cannot recover from a lost ps: restart the chief, which
      # resumes from its latest checkpoint once the ps is back.
      say('[launcher] restarting chief after the loss of '
          f'{task.role}')
      self._chief.kill_and_wait()
      self._chief.restart()
    return None


def resolve_config() -> tuple[config_lib.GorilaConfig, str, list[str]]:
  """Config, run dir and the overrides passed to every task, from the flags."""
  overrides = list(FLAGS.set)
  for flag_name, key in (('num_ps', 'launch.num_ps'),
                         ('num_workers', 'launch.num_workers'),
                         ('evaluator', 'launch.evaluator')):
    value = getattr(FLAGS, flag_name)
    if value is not None:
      overrides.append(f'{key}={value}')
  config = config_lib.resolve(FLAGS.config, overrides)
  if not any(o.startswith('run.intra_op_threads=') for o in overrides):
    # Every task on this machine: share its cores instead of each taking all.
    threads = topology.shared_threads(len(topology.task_slots(config.launch)))
    overrides.append(f'run.intra_op_threads={threads}')
    config = config_lib.resolve(FLAGS.config, overrides)
  from gorila_tf.agent import environments  # pylint: disable=g-import-not-at-top
  environments.check_env_id(config.env.id)
  run_dir = FLAGS.run_dir or run_dir_lib.default_run_dir(config)
  # Before anything is created in it: a live chief's run dir is refused here.
  seen = lease_lib.check_free(run_dir, config.run.lease_timeout_s)
  if seen.state in ('stale', 'exited'):  # the chief decides, and says so
    say(f'[launcher] {lease_lib.launcher_line(run_dir, seen, config.run.lease_timeout_s)}')
  run_dir_lib.check_writable(run_dir, config.run.min_free_disk_mb)
  if os.path.exists(os.path.join(run_dir, run_dir_lib.SIGNATURE_FILE)):
    # Here, once, before any task starts (each would refuse it on its own);
    # only when there is a signature, since env_info opens the game.
    run_dir_lib.check_compatible(run_dir, run_dir_lib.model_signature(
        config, environments.env_info(config.env), config.launch.num_ps))
  return config, run_dir, overrides


def main(argv):
  del argv
  if FLAGS.progress_every_s <= 0:
    raise errors.ConfigError(
        f'--progress_every_s={FLAGS.progress_every_s:g} must be > 0 (seconds)')
  if FLAGS.max_wall_s is not None and not 0 < FLAGS.max_wall_s < float('inf'):
    raise errors.ConfigError(
        f'--max_wall_s={FLAGS.max_wall_s:g} is out of range; allowed: > 0 '
        'seconds (leave it out for no limit)')
  if FLAGS.max_restarts < 0:
    raise errors.ConfigError(
        f'--max_restarts={FLAGS.max_restarts} is out of range; allowed: >= 0')
  config, run_dir, overrides = resolve_config()
  if FLAGS.topology == 'single':
    return run_single(config, run_dir)
  network = 'loopback-only network namespace'
  if FLAGS.hosts == 'emulated':
    network = 'a network namespace per host'
  elif FLAGS.isolate_network:
    why = isolation.isolate_network()
    if why:
      network = f'host network (no namespace: {why}; servers listen on all interfaces)'
  else:
    network = 'host network (servers listen on all interfaces)'
  placement = make_placement(config, run_dir)
  try:
    return run_cluster(config, run_dir, overrides, placement, network)
  finally:
    placement.close()  # emulated hosts: namespaces, links, cgroups


def run_single(config: config_lib.GorilaConfig, run_dir: str) -> int:
  """The agent in this process (runtime/single.py); returns the status."""
  global CONSOLE
  CONSOLE = progress.make_console(FLAGS.progress)
  from gorila_tf.runtime import single  # pylint: disable=g-import-not-at-top
  say(f'[launcher] run dir {run_dir}; one process: actors, replay, learner')
  stop = threading.Event()
  signal.signal(signal.SIGINT, lambda *_: stop.set())
  signal.signal(signal.SIGTERM, lambda *_: stop.set())
  walled = threading.Event()
  if FLAGS.max_wall_s is not None:
    timer = threading.Timer(FLAGS.max_wall_s, lambda: (walled.set(), stop.set()))
    timer.daemon = True
    timer.start()
  reporter_stop = threading.Event()
  reporter = progress.ProgressReporter(
      CONSOLE, run_dir, config.run.max_frames,
      1.0 if CONSOLE.live else FLAGS.progress_every_s, reporter_stop)
  if FLAGS.progress != 'off':
    reporter.start()
  try:
    done = single.run(config, run_dir, stop)
  except errors.GorilaError as e:
    say(f'error: {e}')
    return e.exit_status
  finally:
    reporter_stop.set()
    if FLAGS.progress != 'off':
      reporter.join()
      reporter.report_once()
    CONSOLE.close()
  if done:
    say('[launcher] training done')
    return exit_codes.OK
  return exit_codes.WALL if walled.is_set() else exit_codes.INTERRUPTED


def run_cluster(config: config_lib.GorilaConfig, run_dir: str,
                overrides: Sequence[str], placement: topology.Placement,
                network: str) -> int:
  """Starts the tasks, watches them until the run ends; returns the status."""
  global CONSOLE
  CONSOLE = progress.make_console(FLAGS.progress)
  say(f'[launcher] run dir {run_dir}; {config.launch.num_ps} ps, '
      f'{config.launch.num_workers} workers, chief'
      f'{", evaluator" if config.launch.evaluator else ""} '
      f'{placement.description}, {network}')
  say(f'[launcher] tensorboard --logdir {os.path.join(run_dir, "tb")}')
  train_args = [f'--config={FLAGS.config}', f'--run_dir={run_dir}']
  train_args += [f'--set={o}' for o in overrides]
  stop = threading.Event()

  def on_signal(signum, frame):
    del signum, frame
    stop.set()

  signal.signal(signal.SIGINT, on_signal)
  signal.signal(signal.SIGTERM, on_signal)
  # One owner token per launch, in every task's environment: a chief this
  # launcher restarts resumes its predecessor's lease at once (lease.py).
  os.environ[lease_lib.TOKEN_ENV] = secrets.token_hex(16)
  tasks = start_cluster(config, run_dir, train_args, placement)
  reporter_stop = threading.Event()
  reporter = None
  if FLAGS.progress != 'off':
    every_s = 1.0 if CONSOLE.live else FLAGS.progress_every_s
    reporter = progress.ProgressReporter(CONSOLE, run_dir, config.run.max_frames,
                                         every_s, reporter_stop)
    reporter.start()
  try:
    status = Supervisor(tasks, FLAGS.max_restarts, run_dir).run(
        stop, FLAGS.max_wall_s)
    if status == exit_codes.WALL:
      evaluate_last_checkpoint(tasks, stop)
      say_if_plays(run_dir)  # the last checkpoint may be the one that plays
  finally:
    reporter_stop.set()
    stop_all(tasks)
    if reporter is not None:
      reporter.join()
      reporter.report_once()  # the chief's last record, written as it stopped
    if status == exit_codes.INTERRUPTED and not os.path.exists(
        os.path.join(run_dir, 'checkpoints', 'checkpoint')):
      say('[launcher] stopped cleanly during start-up: nothing had been '
          'trained, so there was nothing to save')
    CONSOLE.close()
  return status


def cli():
  command.run(define_flags, main)


if __name__ == '__main__':
  cli()
