r"""Local launcher: a whole Gorila cluster on this machine, over loopback.

Starts N ps tasks, M worker tasks (bundles), the chief and optionally an
evaluator as child processes of this one, each running `gorila_tf.train` with
its own TF_CONFIG on 127.0.0.1. Every child's output is shown with its role
as a prefix and saved to <run_dir>/logs/<role>.log.

It stops every child when the chief finishes (frame budget reached), when a
task fails (exit status 1), on Ctrl-C or SIGTERM, or after --max_wall_s.
Children die with the launcher even if it is killed (PR_SET_PDEATHSIG).

  python -m gorila_tf.launch.local --config=cartpole
  python -m gorila_tf.launch.local --config=pong --num_workers=2 \
      --set=run.max_frames=2000000 --run_dir=runs/pong1
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Optional, Sequence

from absl import app
from absl import flags

from gorila_tf import cluster as cluster_lib
from gorila_tf import config as config_lib
from gorila_tf import run_dir as run_dir_lib

FLAGS = flags.FLAGS
flags.DEFINE_string('config', 'pong', 'Preset name from configs/.')
flags.DEFINE_multi_string('set', [], 'Override, section.field=value (repeatable).')
flags.DEFINE_string('run_dir', None, 'Run directory; default runs/<game>__<preset>'
                    '__<seed>__<time>. An existing one is resumed.')
flags.DEFINE_integer('num_ps', None, 'Parameter-server tasks (default: config).')
flags.DEFINE_integer('num_workers', None, 'Bundles (default: config).')
flags.DEFINE_bool('evaluator', None, 'Start an evaluator task (default: config).')
flags.DEFINE_float('max_wall_s', None, 'Stop everything after this many seconds '
                   '(exit status 3).')

HOST = '127.0.0.1'
STOP_GRACE_S = 10.0  # seconds a task has to exit after SIGTERM
CHIEF_GRACE_S = 60.0  # the chief finishes its closures and checkpoints first
_PR_SET_PDEATHSIG = 1


def _port_free(port: int) -> bool:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    try:
      s.bind((HOST, port))
      return True
    except OSError:
      return False


def pick_ports(count: int) -> list[int]:
  """Ports p with p + REVERB_PORT_OFFSET free too, all distinct."""
  ports: list[int] = []
  while len(ports) < count:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
      s.bind((HOST, 0))
      port = s.getsockname()[1]
    pair = port + cluster_lib.REVERB_PORT_OFFSET
    taken = {q for p in ports for q in (p, p + cluster_lib.REVERB_PORT_OFFSET)}
    if pair < 65536 and not {port, pair} & taken and _port_free(pair):
      ports.append(port)
  return ports


def make_cluster(num_ps: int, num_workers: int) -> dict[str, list[str]]:
  ports = pick_ports(num_ps + num_workers + 1)
  addresses = [f'{HOST}:{p}' for p in ports]
  return {'chief': addresses[:1], 'ps': addresses[1:1 + num_ps],
          'worker': addresses[1 + num_ps:]}


def _die_with_parent() -> None:
  """Runs in the child before exec: SIGKILL it if the launcher dies."""
  libc = ctypes.CDLL('libc.so.6', use_errno=True)
  libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class TaskProcess:
  """One child task with its output pumped to our stdout and a log file."""

  def __init__(self, role: str, task_type: str, index: int,
               cluster: dict[str, list[str]], args: Sequence[str], log_dir: str):
    self.role = role
    self.task_type = task_type
    env = dict(os.environ)
    env['TF_CONFIG'] = json.dumps({'cluster': cluster,
                                   'task': {'type': task_type, 'index': index}})
    env['GRPC_FAIL_FAST'] = 'use_caller'
    env['PYTHONUNBUFFERED'] = '1'
    self._log = open(os.path.join(log_dir, f'{role}.log'), 'a')
    self.process = subprocess.Popen(
        [sys.executable, '-m', 'gorila_tf.train', *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,
        preexec_fn=_die_with_parent)
    self._pump = threading.Thread(target=self._copy_output, daemon=True)
    self._pump.start()
    print(f'[launcher] started {role} (pid {self.process.pid})', flush=True)

  def _copy_output(self) -> None:
    for raw in self.process.stdout:
      line = raw.decode(errors='replace').rstrip('\n')
      sys.stdout.write(f'[{self.role}] {line}\n')
      sys.stdout.flush()
      self._log.write(line + '\n')
      self._log.flush()

  def poll(self) -> Optional[int]:
    return self.process.poll()

  def signal(self, signum: int) -> None:
    """Signals the task's whole process group, if it is still running."""
    if self.process.poll() is None:
      try:
        os.killpg(self.process.pid, signum)
      except ProcessLookupError:
        pass

  def close(self) -> None:
    self._pump.join(timeout=5)
    self._log.close()


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
        t.signal(signal.SIGKILL)
        t.process.wait()
  for t in tasks:
    t.close()


def start_cluster(config: config_lib.GorilaConfig, run_dir: str,
                  train_args: Sequence[str]) -> list[TaskProcess]:
  launch = config.launch
  cluster = make_cluster(launch.num_ps, launch.num_workers)
  log_dir = os.path.join(run_dir, 'logs')
  os.makedirs(log_dir, exist_ok=True)
  tasks = [TaskProcess(f'ps{i}', 'ps', i, cluster, train_args, log_dir)
           for i in range(launch.num_ps)]
  tasks += [TaskProcess(f'worker{i}', 'worker', i, cluster, train_args, log_dir)
            for i in range(launch.num_workers)]
  tasks.append(TaskProcess('chief', 'chief', 0, cluster, train_args, log_dir))
  if launch.evaluator:
    tasks.append(TaskProcess('evaluator', 'evaluator', 0, cluster, train_args,
                             log_dir))
  return tasks


def supervise(tasks: Sequence[TaskProcess], max_wall_s: Optional[float],
              stop: threading.Event) -> int:
  """Waits for the chief; returns the launcher's exit status."""
  chief = next(t for t in tasks if t.task_type == 'chief')
  evaluator = next((t for t in tasks if t.task_type == 'evaluator'), None)
  start = time.monotonic()
  while not stop.wait(0.5):
    for t in tasks:
      code = t.poll()
      if code is not None and t is not chief and t is not evaluator:
        print(f'[launcher] {t.role} exited with status {code}; stopping the run',
              flush=True)
        return 1
      if t is evaluator and code not in (None, 0):
        print(f'[launcher] evaluator exited with status {code}; stopping the run',
              flush=True)
        return 1
    code = chief.poll()
    if code is not None:
      if code != 0:
        print(f'[launcher] chief exited with status {code}; stopping the run',
              flush=True)
        return 1
      if evaluator is not None:
        print('[launcher] training done; waiting for the final evaluation',
              flush=True)
        while evaluator.poll() is None and not stop.wait(0.5):
          pass
      print('[launcher] training done', flush=True)
      return 0
    if max_wall_s is not None and time.monotonic() - start > max_wall_s:
      print(f'[launcher] --max_wall_s={max_wall_s} reached; stopping the run',
            flush=True)
      return 3
  print('[launcher] interrupted; stopping the run', flush=True)
  return 130


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  overrides = list(FLAGS.set)
  for flag_name, key in (('num_ps', 'launch.num_ps'),
                         ('num_workers', 'launch.num_workers'),
                         ('evaluator', 'launch.evaluator')):
    value = getattr(FLAGS, flag_name)
    if value is not None:
      overrides.append(f'{key}={value}')
  try:
    config = config_lib.resolve(FLAGS.config, overrides)
    from gorila_tf import environments  # pylint: disable=g-import-not-at-top
    environments.check_env_id(config.env.id)
    run_dir = FLAGS.run_dir or run_dir_lib.default_run_dir(config)
    run_dir_lib.check_writable(run_dir)
  except config_lib.ConfigError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(f'[launcher] run dir {run_dir}; {config.launch.num_ps} ps, '
        f'{config.launch.num_workers} workers, chief'
        f'{", evaluator" if config.launch.evaluator else ""} on {HOST}', flush=True)
  print(f'[launcher] tensorboard --logdir {os.path.join(run_dir, "tb")}',
        flush=True)
  train_args = [f'--config={FLAGS.config}', f'--run_dir={run_dir}']
  train_args += [f'--set={o}' for o in overrides]
  stop = threading.Event()

  def on_signal(signum, frame):
    del signum, frame
    stop.set()

  signal.signal(signal.SIGINT, on_signal)
  signal.signal(signal.SIGTERM, on_signal)
  tasks = start_cluster(config, run_dir, train_args)
  try:
    status = supervise(tasks, FLAGS.max_wall_s, stop)
  finally:
    stop_all(tasks)
  return status


def cli():
  app.run(main)


if __name__ == '__main__':
  cli()
