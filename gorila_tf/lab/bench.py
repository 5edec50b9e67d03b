r"""Throughput and memory, measured side by side on this machine.

  python -m gorila_tf.lab.bench                      # everything, ~6 minutes
  python -m gorila_tf.lab.bench --sections=emulator,actor,learner --seconds=20
  python -m gorila_tf.lab.bench --out=bench.json

Sections (all on Pong with the Nature network and batch 32):
  emulator  raw AtariVectorEnv steps/s, random actions, as many games as the
            default cluster's actors (the ceiling for actors);
  actor     our Actor on the same games: batched inference, replay writes
            into a real Reverb table, parameter refreshes from a real
            variables table;
  learner   DQN updates/s of one tf.function loop in one process vs. the same
            update through ParameterServerStrategy (1 ps, 1 worker, real
            servers on loopback), both sampling a prefilled Reverb table;
  e2e       frames/s and updates/s of the default `make run` cluster, and each
            process's peak resident memory;
  faults    (only when asked for) time to recover from a SIGKILLed worker,
            ps and chief, and the updates each lost (bench_faults.py);
  memory    replay bytes per stored transition;
  chaos     (only when asked for) random overlapping faults for
            --chaos_minutes, invariants checked (bench_chaos.py);
  control   (only when asked for) closures/s per chief, applies and reads/s
            per ps at a CPU share, cost per parameter pull (bench_control.py);
  limit     (only when asked for) the one-process update in float32 and
            bfloat16 compute at batch 32, 64 and 128, and the oneDNN kernels
            that ran (bench_limit.py);
  learning  (only when asked for) the preset trained on several seeds: does
            each learn or collapse (bench_learning.py; --learning_seeds,
            --learning_frames, --learning_run_dirs);
  peers     TF-Agents' DqnAgent with Reverb in one process, and
            Stable-Baselines3's DQN (its own virtualenv, see
            gorila_tf/lab/peers/), at our replay ratio.

Ratios are what count: absolute numbers drift on shared machines.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('GRPC_FAIL_FAST', 'use_caller')

from absl import flags  # pylint: disable=g-import-not-at-top

from gorila_tf.runtime import processes
from gorila_tf import command
from gorila_tf import config as config_lib
from gorila_tf import errors
from gorila_tf import exit_codes
from gorila_tf import launch
from gorila_tf.lab import bench_bad_input
from gorila_tf.lab import bench_chaos
from gorila_tf.lab import bench_control
from gorila_tf.lab import bench_faults
from gorila_tf.lab import bench_learning
from gorila_tf.lab import bench_limit
from gorila_tf.lab import bench_report
from gorila_tf.lab import bench_scaling
from gorila_tf.lab import bench_startup
from gorila_tf.launch import hosts as hosts_lib
from gorila_tf.launch import topology

FLAGS = flags.FLAGS
SECTIONS = ('emulator', 'actor', 'learner', 'memory', 'e2e', 'peers', 'faults',
            'scaling', 'control', 'limit', 'learning', 'chaos', 'bad_input',
            'startup')
# Asked for by name: faults takes ~6 more minutes, scaling ~15 (and root),
# control ~4, limit ~6 x (--seconds + 20 s), learning ~12 per seed, chaos
# its --chaos_minutes and more, bad_input a few minutes, startup ~1.
DEFAULT_SECTIONS = SECTIONS[:-8]


def define_flags():
  """Defines the command's flags, at run time: importing registers none."""
  flags.DEFINE_list('sections', list(DEFAULT_SECTIONS), f'Any of {", ".join(SECTIONS)}.')
  flags.DEFINE_float('seconds', 30.0, 'Measuring time per section.')
  flags.DEFINE_string('config', 'pong', 'Preset the measurements use.')
  flags.DEFINE_multi_string('set', [], 'Config override, section.field=value '
                            '(repeatable), applied to every section.')
  flags.DEFINE_string('out', None, 'Also write the results as JSON here.')
  flags.DEFINE_float('scaling_worker_cores', 0.15, 'scaling: CPU share of each '
                     "bundle's emulated host, in cores.")
  flags.DEFINE_list('scaling_points', ['1x2', '2x2', '4x2', '8x2', '4x1', '4x4'],
                    'scaling: the clusters measured, as <bundles>x<ps>.')
  flags.DEFINE_list('learning_seeds', ['0', '1', '2', '3', '4'],
                    'learning: the seeds trained, one after another.')
  flags.DEFINE_integer('learning_frames', 300_000,
                       'learning: frames each seed trains for.')
  flags.DEFINE_list('learning_run_dirs', [], 'learning: judge these run '
                    'directories instead of training new ones.')
  flags.DEFINE_string('learning_keep', None, 'learning: keep the runs in this '
                      'directory (default: a temporary one).')
  flags.DEFINE_list('limit_batches', ['32', '64', '128'], 'limit: batch sizes.')
  flags.DEFINE_integer('chaos_seed', 0, 'chaos: the seed of the fault schedule.')
  flags.DEFINE_float('chaos_minutes', 30.0, 'chaos: the faults end this many '
                     'minutes after the launch.')
  flags.DEFINE_float('chaos_calm_s', bench_chaos.CALM_S, 'chaos: seconds of '
                     'undisturbed training before the first fault (the pace '
                     'without faults; Pong needs minutes to start learning).')
  flags.DEFINE_list('chaos_every_s', ['30', '60'], 'chaos: seconds between '
                    'faults, drawn uniformly from this range.')
  flags.DEFINE_integer('chaos_frames', 0, 'chaos: the frame budget (0: about '
                       'what the run trains in its minutes of faults).')
  flags.DEFINE_bool('chaos_hosts', False, 'chaos: tasks on emulated hosts '
                    '(root), so that links can be cut too.')
  flags.DEFINE_list('bad_input_cases', [], 'bad_input: only the cases of these '
                    'names (default: every one).')
  flags.DEFINE_string('peer_python', '.venv-bench/bin/python',
                      'Python of the Stable-Baselines3 virtualenv.')


# The checkout's root: this file is <root>/gorila_tf/lab/bench.py.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def timed(run_for: Callable[[float], int], seconds: float) -> tuple[int, float]:
  """Calls run_for(deadline) -> units done; returns (units, seconds taken)."""
  start = time.monotonic()
  units = run_for(start + seconds)
  return units, time.monotonic() - start


def bench_emulator(config, seconds: float) -> dict[str, Any]:
  import numpy as np  # pylint: disable=g-import-not-at-top
  from gorila_tf.agent import environments  # pylint: disable=g-import-not-at-top
  n = config.actor.envs_per_bundle * config.launch.num_workers
  env = environments.VectorEnv(config.env, n, seed=0)
  env.reset()
  rng = np.random.default_rng(0)

  def run(deadline):
    steps = 0
    while time.monotonic() < deadline:
      env.step(rng.integers(0, env.num_actions, n, dtype=np.int32))
      steps += n
    return steps

  steps, seconds = timed(run, seconds)
  env.close()
  return {'envs': n, 'env_steps_per_s': steps / seconds}


def _fill_servers(config, info):
  """A replay table without rate limiting and the chief's tables."""
  import reverb  # pylint: disable=g-import-not-at-top
  from gorila_tf.runtime import broadcast, builder, metrics  # pylint: disable=g-import-not-at-top
  free = builder.DQNBuilder(config_lib.apply_overrides(
      config, ['replay.samples_per_insert=0', 'replay.min_size=1']), info)
  replay_server = reverb.Server([free.make_replay_table()])
  net = free.make_network()
  chief = reverb.Server([broadcast.make_variables_table(net.shapes()),
                         metrics.make_stats_table()])
  broadcast.ParameterPublisher(f'localhost:{chief.port}', net).publish(0, 0)
  return replay_server, chief


def _make_actor(config, info, replay_server, chief, num_envs, seed=0):
  from gorila_tf.runtime import broadcast, builder, metrics  # pylint: disable=g-import-not-at-top
  address = f'localhost:{chief.port}'
  sized = config_lib.apply_overrides(config, [f'actor.envs_per_bundle={num_envs}'])
  return builder.DQNBuilder(sized, info).make_actor(
      replay_server.localhost_client(),
      lambda net: broadcast.ParameterSubscriber(address, net),
      metrics.StatsReporter(address, 0, 1.0), seed=seed)


def bench_actor(config, seconds: float) -> dict[str, Any]:
  from gorila_tf.agent import environments  # pylint: disable=g-import-not-at-top
  info = environments.env_info(config.env)
  replay_server, chief = _fill_servers(config, info)
  n = config.actor.envs_per_bundle * config.launch.num_workers
  actor = _make_actor(config, info, replay_server, chief, n)
  stop = threading.Event()
  actor.run(stop, max_steps=20)  # compile the policy first
  before = actor.env_steps
  start = time.monotonic()
  threading.Thread(target=stop_after, daemon=True, args=(
      seconds, stop, lambda: actor.env_steps > before)).start()
  actor.run(stop)
  took = time.monotonic() - start
  steps = actor.env_steps - before
  actor.close()
  replay_server.stop()
  chief.stop()
  return {'envs': n, 'env_steps_per_s': steps / took,
          'param_refresh_steps': config.actor.param_refresh_steps}


def stop_after(seconds: float, stop: threading.Event, progressed,
                patience_s: float = 60.0) -> None:
  """Sets `stop` after `seconds`, or later once `progressed()`: a window with
  no step at all measured nothing (in the suite, beside two clusters, 3 s of
  a Pong actor's reset and first parameter pull once made 0 steps)."""
  time.sleep(seconds)
  deadline = time.monotonic() + patience_s
  while not progressed() and time.monotonic() < deadline:
    time.sleep(0.05)
  stop.set()


class _ReplayFiller:
  """A Reverb replay filled with real Pong transitions by a real actor."""

  def __init__(self, config, info, port: int | None = None):
    import reverb  # pylint: disable=g-import-not-at-top
    from gorila_tf.runtime import builder  # pylint: disable=g-import-not-at-top
    free = builder.DQNBuilder(config_lib.apply_overrides(
        config, ['replay.samples_per_insert=0', 'replay.min_size=1']), info)
    self.server = reverb.Server([free.make_replay_table()], port=port)
    _, self._chief = _fill_servers(config, info)
    self._actor = _make_actor(config, info, self.server, self._chief, 4, seed=1)

  def fill_to(self, transitions: int) -> None:
    while self._actor.env_steps < transitions:
      self._actor.run(threading.Event(), max_steps=100)

  def close_actor(self) -> None:
    self._actor.close()
    self._chief.stop()


def prefilled_replay(config, info, transitions: int, port: int | None = None):
  """A Reverb server holding `transitions` of the config's game (ε = 1)."""
  filler = _ReplayFiller(config, info, port)
  filler.fill_to(transitions)
  filler.close_actor()
  return filler.server


def single_process_learner(config, seconds: float, queue) -> None:
  """The learner round of the one-process mode (single.py) on a filled replay."""
  from gorila_tf.runtime import single  # pylint: disable=g-import-not-at-top
  agent = single.SingleProcessAgent(config)
  server = prefilled_replay(config, agent.builder.info, 2_000)
  train = agent.make_training(f'localhost:{server.port}')
  train()
  steps = config.learner.steps_per_closure
  updates, took = timed(lambda deadline: _repeat(train, deadline) * steps, seconds)
  queue.put({'updates_per_s': updates / took})


def _repeat(fn, deadline) -> int:
  calls = 0
  while time.monotonic() < deadline:
    fn()
    calls += 1
  return calls


def _pss_learner(config, seconds: float, queue) -> None:
  """The chief's learner closures on a real 1-ps, 1-worker cluster (no chief loop)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from gorila_tf.runtime import builder, cluster, model as model_lib, ps  # pylint: disable=g-import-not-at-top
  from gorila_tf.agent import environments  # pylint: disable=g-import-not-at-top
  from gorila_tf.tools import inprocess_cluster  # pylint: disable=g-import-not-at-top
  info = environments.env_info(config.env)
  task, _ = inprocess_cluster.start(num_ps=1, num_workers=1)
  _, port = cluster.split_address(task.worker_reverb_addresses()[0])
  server = prefilled_replay(config, info, 2_000, port=port)
  strategy = ps.make_strategy(task, config.launch.min_shard_bytes)
  cluster_coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
  dqn = builder.DQNBuilder(config, info)
  model = model_lib.build_model(strategy, dqn, task.num_workers)
  learner = dqn.make_learner(model.q_net, model.target_net, model.optimizer,
                             model.learner_state)
  iterator = iter(cluster_coordinator.create_per_worker_dataset(
      model_lib.make_dataset_fn(task, dqn)))
  train = learner.train_steps
  learner.sync_target()
  for _ in range(2):
    cluster_coordinator.schedule(train, args=(iterator,))
  cluster_coordinator.join()
  updates = lambda: int(model.optimizer.iterations.numpy())
  start_updates = updates()

  def run(deadline):
    while time.monotonic() < deadline:
      for _ in range(config.run.max_closures_in_flight):
        cluster_coordinator.schedule(train, args=(iterator,))
      cluster_coordinator.join()
    return updates() - start_updates

  updates, took = timed(run, seconds)
  queue.put({'updates_per_s': updates / took})
  del server, tf
  os._exit(0)  # in-process servers have no clean shutdown


def bench_learner(config, seconds: float) -> dict[str, Any]:
  single = processes.in_child(single_process_learner, config, seconds)
  pss = processes.in_child(_pss_learner, config, seconds)
  return {'single_process_updates_per_s': single['updates_per_s'],
          'pss_updates_per_s': pss['updates_per_s'],
          'pss_over_single': pss['updates_per_s'] / single['updates_per_s'],
          'batch_size': config.learner.batch_size,
          'replica_sync_period': config.learner.replica_sync_period}


def _memory(config, queue) -> None:
  """Marginal memory of 20,000 more transitions, and their checkpoint size."""
  from gorila_tf.agent import environments, replay  # pylint: disable=g-import-not-at-top
  info = environments.env_info(config.env)
  filler = _ReplayFiller(config, info)
  filler.fill_to(5_000)  # everything but the replay has been allocated by now
  before, stored_before = _rss_mb(), filler.server.localhost_client().server_info()[
      replay.REPLAY_TABLE].current_size
  filler.fill_to(25_000)
  client = filler.server.localhost_client()
  stored = client.server_info()[replay.REPLAY_TABLE].current_size
  grown = (_rss_mb() - before) * 2**20 / (stored - stored_before)
  path = client.checkpoint()
  on_disk = sum(os.path.getsize(os.path.join(root, f))
                for root, _, files in os.walk(path) for f in files)
  stacked = 2 * info.frame_stack * int(_prod(info.frame_shape))  # s and s'
  filler.close_actor()
  queue.put({'transitions': stored,
             'rss_bytes_per_transition': grown,
             'checkpoint_bytes_per_transition': on_disk / stored,
             'two_stacked_observations_bytes': stacked})


def _prod(shape) -> int:
  total = 1
  for d in shape:
    total *= d
  return total


def _rss_mb() -> float:
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith('VmRSS:'):
        return int(line.split()[1]) / 1024
  return 0.0


def bench_memory(config, seconds: float) -> dict[str, Any]:
  del seconds
  return processes.in_child(_memory, config)


def bench_e2e(config_name: str, seconds: float,
              overrides: tuple[str, ...] = (),
              env_steps_per_update: float = 4.0) -> dict[str, Any]:
  """The default cluster for `seconds` after warm-up, with peak RSS per task.

  `env_steps_per_update` (the replay ratio: batch size / samples per insert)
  is reported beside the rates, for the machine-limit line.
  """
  import psutil  # pylint: disable=g-import-not-at-top
  from gorila_tf.runtime import records  # pylint: disable=g-import-not-at-top
  run_dir = tempfile.mkdtemp(prefix='gorila-bench-')
  warmup = 60.0
  proc = subprocess.Popen(
      launch.local_command(config_name, run_dir, overrides,
                           f'--max_wall_s={warmup + seconds}', '--progress=off'),
      cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  peak: dict[str, float] = {}
  while proc.poll() is None:
    for child in psutil.Process(proc.pid).children(recursive=True):
      try:
        role = _role(child.cmdline(), child.environ())
        peak[role] = max(peak.get(role, 0.0), child.memory_info().rss / 2**20)
      except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass
    time.sleep(1.0)
  rows = [r for r in records.read_progress(run_dir)]
  start = rows[0]['time'] + warmup
  steady = [r for r in rows if r['time'] >= start]
  shutil.rmtree(run_dir, ignore_errors=True)
  if len(steady) < 2:
    return {'error': 'too few summaries after warm-up'}
  span = steady[-1]['time'] - steady[0]['time']
  frames = steady[-1]['charts/frames'] - steady[0]['charts/frames']
  updates = steady[-1]['learners/updates'] - steady[0]['learners/updates']
  return {'frames_per_s': frames / span, 'updates_per_s': updates / span,
          'env_steps_per_s': frames / span / 4, 'peak_rss_mb': peak,
          'env_steps_per_update': env_steps_per_update}


def _role(cmdline, environ) -> str:
  config = environ.get('TF_CONFIG')
  if config:
    task = json.loads(config)['task']
    return f'{task["type"]}{task["index"]}'
  return os.path.basename(cmdline[0]) if cmdline else '?'


def _peer(command: list[str], seconds: float) -> dict[str, Any]:
  proc = subprocess.run([*command, f'--seconds={seconds}'], cwd=REPO,
                        capture_output=True, text=True, timeout=seconds + 600)
  lines = [l for l in proc.stdout.splitlines() if l.startswith('RESULT ')]
  if not lines:
    return {'error': (proc.stderr or proc.stdout)[-500:]}
  return json.loads(lines[-1][len('RESULT '):])


def bench_peers(config, seconds: float) -> dict[str, Any]:
  del config
  results = {'tf_agents_dqn': _peer(
      [sys.executable, '-m', 'gorila_tf.lab.peers.tf_agents_dqn'], seconds)}
  peer_python = os.path.join(REPO, FLAGS.peer_python)
  if os.path.exists(peer_python):
    results['sb3_dqn'] = _peer(
        [peer_python, os.path.join(REPO, 'gorila_tf', 'tools', 'peers', 'sb3_dqn.py')],
        seconds)
  else:
    results['sb3_dqn'] = {'error': f'{FLAGS.peer_python} missing: run '
                          'gorila_tf/lab/peers/install_sb3_venv.sh'}
  return results


def scaling_points(texts: list[str]) -> list[tuple[int, int]]:
  """['4x2', ...] -> [(4 bundles, 2 ps), ...]; ConfigError names a bad one."""
  points = []
  for text in texts:
    bundles, sep, ps = text.partition('x')
    if not (sep and bundles.isdigit() and ps.isdigit() and int(bundles) >= 1
            and int(ps) >= 1):
      raise errors.ConfigError(f'--scaling_points: {text!r} is not '
                               '<bundles>x<ps>, e.g. 4x2')
    points.append((int(bundles), int(ps)))
  return points


def learning_seeds(texts: list[str]) -> list[int]:
  """['0', '1'] -> [0, 1]; ConfigError names a bad one."""
  for text in texts:
    if not text.isdigit():
      raise errors.ConfigError(f'--learning_seeds: {text!r} is not a seed '
                               '(an integer >= 0)')
  return [int(t) for t in texts]


def every_range(texts: list[str]) -> tuple[float, float]:
  """['30', '60'] -> (30.0, 60.0); ConfigError names a bad one."""
  try:
    low, high = (float(t) for t in texts)
  except ValueError:
    low = high = -1.0
  if not 1 <= low <= high:
    raise errors.ConfigError(f'--chaos_every_s={",".join(texts)} is not a range '
                             'of seconds low,high with 1 <= low <= high')
  return low, high


def chaos_window(minutes: float, calm_s: float) -> None:
  """ConfigError unless faults fit between --chaos_calm_s and --chaos_minutes."""
  if not 0 < minutes <= 24 * 60:
    raise errors.ConfigError(f'--chaos_minutes={minutes:g} is out of range; '
                             'allowed: 0 < minutes <= 1440')
  if not 0 <= calm_s < 60 * minutes:
    raise errors.ConfigError(
        f'--chaos_calm_s={calm_s:g} is out of range; allowed: 0 <= calm_s < '
        f'{60 * minutes:g} (the faults end --chaos_minutes={minutes:g} after '
        'the launch)')


def main(argv):
  del argv
  unknown = [s for s in FLAGS.sections if s not in SECTIONS]
  if unknown:
    print(f'error: unknown section {unknown[0]!r}; allowed: {", ".join(SECTIONS)}',
          file=sys.stderr)
    return exit_codes.BAD_INPUT
  config = config_lib.resolve(FLAGS.config, FLAGS.set)
  points = scaling_points(FLAGS.scaling_points)
  seeds = learning_seeds(FLAGS.learning_seeds)
  chaos_every = every_range(FLAGS.chaos_every_s)
  chaos_window(FLAGS.chaos_minutes, FLAGS.chaos_calm_s)
  if 'scaling' in FLAGS.sections:
    topology.check_emulation()
  results: dict[str, Any] = {
      'date': time.strftime('%Y-%m-%d %H:%M'),
      'machine': f'{platform.node()}, {os.cpu_count()} cores, {platform.processor() or platform.machine()}',
      'config': FLAGS.config, 'overrides': list(FLAGS.set),
      'seconds': FLAGS.seconds}
  runners = {'emulator': lambda: bench_emulator(config, FLAGS.seconds),
             'actor': lambda: bench_actor(config, FLAGS.seconds),
             'learner': lambda: bench_learner(config, FLAGS.seconds),
             'memory': lambda: bench_memory(config, FLAGS.seconds),
             'e2e': lambda: bench_e2e(
                 FLAGS.config, FLAGS.seconds, FLAGS.set,
                 config.learner.batch_size / config.replay.samples_per_insert),
             'peers': lambda: bench_peers(config, FLAGS.seconds),
             'faults': lambda: {
                 **bench_faults.measure(FLAGS.config, FLAGS.set),
                 'pause': bench_faults.measure_pause(
                     FLAGS.config, FLAGS.set, launcher_flags=(
                         bench_faults.PAUSE_HOSTS
                         if hosts_lib.check_support() is None else ()))},
             'scaling': lambda: bench_scaling.measure(
                 FLAGS.config, FLAGS.set, FLAGS.seconds,
                 FLAGS.scaling_worker_cores, points,
                 steps_per_closure=config.learner.steps_per_closure),
             'control': lambda: bench_control.measure(FLAGS.config, FLAGS.set,
                                                      FLAGS.seconds),
             'limit': lambda: bench_limit.measure(
                 FLAGS.config, FLAGS.set, FLAGS.seconds, single_process_learner,
                 prefilled_replay, batches=[int(b) for b in FLAGS.limit_batches]),
             'chaos': lambda: bench_chaos.measure(
                 FLAGS.config, FLAGS.set, FLAGS.chaos_seed, FLAGS.chaos_minutes,
                 chaos_every, FLAGS.chaos_frames or int(
                     200 * 60 * FLAGS.chaos_minutes * config.env.frameskip),
                 FLAGS.chaos_hosts, FLAGS.chaos_calm_s),
             'bad_input': lambda: bench_bad_input.measure(FLAGS.bad_input_cases),
             'startup': lambda: bench_startup.measure(FLAGS.config, FLAGS.set),
             'learning': lambda: bench_learning.measure(
                 FLAGS.config, FLAGS.set, seeds, FLAGS.learning_frames,
                 FLAGS.learning_run_dirs, FLAGS.learning_keep)}
  for section in SECTIONS:
    if section in FLAGS.sections:
      print(f'[bench] {section} ...', file=sys.stderr, flush=True)
      results[section] = runners[section]()
  results['ratios'] = bench_report.ratios(results)
  results['bench_peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  print(bench_report.table(results))
  if FLAGS.out:
    with open(FLAGS.out, 'w') as f:
      json.dump(results, f, indent=2)
  return exit_codes.OK


def cli():
  command.run(define_flags, main)


if __name__ == '__main__':
  cli()
