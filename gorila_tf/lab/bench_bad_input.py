"""The bad-input sweep: every bad input we know of, run for real, and what each got.

    python -m gorila_tf.lab.bench --sections=bad_input --out=bad_input.json

Each case runs one real command (the launcher, a tool, a task) on one bad
input, from the command line, the environment or a run directory damaged by
hand, and records its exit status, its `error:` lines and what it did to the
run directory. A case is judged by what a user must get:

  refused   exit 2, exactly one `error:` line, naming the bad value
            (`names`), and the run directory as it was (absent, or every
            file unchanged but the task logs): nothing written, nothing lost
  handled   the command goes on around the damage, printing `says`, with the
            exit status `code`, and no checkpoint lost: the run resumes from
            the newest readable checkpoint (or the damage is set aside)

The cases that damage a run directory copy one short CartPole run trained
at the start (a few thousand frames, checkpoints every 2 s), so each starts
from the same real checkpoints and replay. A case that fails its judgement
is a finding: the table says what it got instead.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Optional

from gorila_tf import exit_codes
from gorila_tf import launch

# The checkout's root: this file is <root>/gorila_tf/lab/bench_bad_input.py.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAUNCH = 'gorila_tf.launch.local'
TRAINED_FRAMES = 3000  # the shared CartPole run the damaged-directory cases copy
MORE_FRAMES = 1000  # what a handled resume trains before it stops


@dataclasses.dataclass(frozen=True)
class Case:
  """One bad input and what it must get."""

  name: str  # what is bad, in a few words
  module: str  # the command (python -m module)
  args: tuple[str, ...] = ()
  expect: str = 'refused'  # or 'handled'
  names: str = ''  # refused: what the one error line must contain
  says: str = ''  # handled: a line the output must contain
  code: int = exit_codes.OK  # handled: the exit status
  env: tuple[tuple[str, str], ...] = ()
  damage: Optional[Callable[[str], None]] = None  # done to a trained run's copy
  trained: bool = False  # runs on a copy of the trained run directory


def _write(relative: str, text: str) -> Callable[[str], None]:
  def damage(run_dir: str) -> None:
    with open(os.path.join(run_dir, relative), 'w') as f:
      f.write(text)
  return damage


def _edit_config(section: str, key: str, value: Any) -> Callable[[str], None]:
  def damage(run_dir: str) -> None:
    path = os.path.join(run_dir, 'config.json')
    with open(path) as f:
      config = json.load(f)
    config[section][key] = value
    with open(path, 'w') as f:
      json.dump(config, f)
  return damage


def _newest_checkpoint(run_dir: str) -> str:
  with open(os.path.join(run_dir, 'checkpoints', 'checkpoint')) as f:
    first = f.readline()  # model_checkpoint_path: "ckpt-N"
  return os.path.join(run_dir, 'checkpoints', first.split('"')[1])


def _garble_newest_checkpoint(run_dir: str) -> None:
  prefix = _newest_checkpoint(run_dir)
  for path in (prefix + '.index',):
    with open(path, 'r+b') as f:
      f.seek(0)
      f.write(b'garbage!' * 8)


def _garble_every_checkpoint(run_dir: str) -> None:
  directory = os.path.join(run_dir, 'checkpoints')
  for name in os.listdir(directory):
    if name.endswith('.index'):
      with open(os.path.join(directory, name), 'r+b') as f:
        f.write(b'garbage!' * 8)


def _garble_replay(run_dir: str) -> None:
  for root, _, files in os.walk(os.path.join(run_dir, 'replay')):
    for name in files:
      if name == 'chunks.tfrecord':
        with open(os.path.join(root, name), 'r+b') as f:
          f.seek(16)
          f.write(b'garbage!' * 4)


def _cut_config(run_dir: str) -> None:
  path = os.path.join(run_dir, 'config.json')
  with open(path) as f:
    text = f.read()
  with open(path, 'w') as f:
    f.write(text[:len(text) // 2])


def _more(frames: int = TRAINED_FRAMES + MORE_FRAMES) -> str:
  return f'--set=run.max_frames={frames}'


CLUSTER = {'chief': ['127.0.0.1:1'], 'ps': ['127.0.0.1:3'], 'worker': ['127.0.0.1:5']}


def cases() -> list[Case]:
  """Every bad input the sweep tries."""
  cartpole = ('--config=cartpole',)
  refused = lambda name, names, *args, module=LAUNCH, **kw: Case(
      name, module, tuple(args), 'refused', names, **kw)
  return [
      # --- the launcher's command line ---
      refused('unknown preset', "'pongg'", '--config=pongg'),
      refused('empty preset', "''", '--config='),
      refused('unknown config key', "'learner.batchsize'", *cartpole,
              '--set=learner.batchsize=3'),
      refused('override without =', "'learner.batch_size'", *cartpole,
              '--set=learner.batch_size'),
      refused('override of a whole section', "'learner'", *cartpole,
              '--set=learner=3'),
      refused('integer given as text', 'learner.batch_size', *cartpole,
              '--set=learner.batch_size=abc'),
      refused('integer given as a fraction', 'learner.batch_size', *cartpole,
              '--set=learner.batch_size=32.5'),
      refused('batch size 0', 'learner.batch_size=0', *cartpole,
              '--set=learner.batch_size=0'),
      refused('batch size beyond the limit', 'learner.batch_size=100000', *cartpole,
              '--set=learner.batch_size=100000'),
      refused('negative learning rate', 'learner.learning_rate=-0.0001', *cartpole,
              '--set=learner.learning_rate=-1e-4'),
      refused('infinite learning rate', "learner.learning_rate='inf'", *cartpole,
              '--set=learner.learning_rate=inf'),
      refused('minus infinite learning rate', "learner.learning_rate='-inf'",
              *cartpole, '--set=learner.learning_rate=-inf'),
      refused('NaN epsilon', "actor.epsilon_start='nan'", *cartpole,
              '--set=actor.epsilon_start=nan'),
      refused('epsilon above 1', 'actor.epsilon_end=2', *cartpole,
              '--set=actor.epsilon_end=2'),
      refused('discount above 1', 'learner.discount=1.5', *cartpole,
              '--set=learner.discount=1.5'),
      refused('n-step beyond the limit', 'learner.n_step=1000', *cartpole,
              '--set=learner.n_step=1000'),
      refused('unknown optimizer', 'learner.optimizer', *cartpole,
              '--set=learner.optimizer=sgd'),
      refused('unknown compute dtype', 'network.compute_dtype', *cartpole,
              '--set=network.compute_dtype=float16'),
      refused('boolean given as text', 'learner.double_dqn', *cartpole,
              '--set=learner.double_dqn=maybe'),
      refused('replay warm-up beyond its capacity', 'replay.min_size', *cartpole,
              '--set=replay.min_size=30000'),
      refused('unknown game', "'ALE/Pongg-v5'", '--config=pong',
              '--set=env.id=ALE/Pongg-v5'),
      refused('negative bundles', 'launch.num_workers=-2', *cartpole,
              '--num_workers=-2'),
      refused('no parameter server', 'launch.num_ps=0', *cartpole, '--num_ps=0'),
      refused('negative wall-clock limit', '--max_wall_s=-5', *cartpole,
              '--max_wall_s=-5'),
      refused('unknown topology', '--topology=mesh', *cartpole, '--topology=mesh'),
      refused('unknown hosts mode', '--hosts=remote', *cartpole, '--hosts=remote'),
      refused('unknown flag', "'max_frames'", *cartpole, '--max_frames=10'),
      refused('stray argument', 'stray', *cartpole, 'stray'),
      refused('negative restarts', '--max_restarts=-1', *cartpole,
              '--max_restarts=-1'),
      refused('run directory that is a file', '/etc/hostname', *cartpole,
              '--run_dir=/etc/hostname'),
      refused('run directory that cannot be made', '/proc/gorila', *cartpole,
              '--run_dir=/proc/gorila/run'),
      refused('quick evaluations fewer than the parallel episodes',
              'eval.quick_episodes=3', '--config=pong_fast',
              '--set=eval.quick_episodes=3'),
      # --- a task's environment ---
      refused('TF_CONFIG not JSON', 'TF_CONFIG', *cartpole, module='gorila_tf.train',
              env=(('TF_CONFIG', '{oops'),)),
      refused('TF_CONFIG task index out of range', 'task index 3', *cartpole,
              module='gorila_tf.train', env=(('TF_CONFIG', json.dumps(
                  {'cluster': CLUSTER, 'task': {'type': 'worker', 'index': 3}})),)),
      refused('TF_CONFIG unknown task type', "'boss'", *cartpole,
              module='gorila_tf.train', env=(('TF_CONFIG', json.dumps(
                  {'cluster': CLUSTER, 'task': {'type': 'boss', 'index': 0}})),)),
      # --- the tools ---
      refused('evaluation of nothing', '--run_dir', module='gorila_tf.tools.evaluate'),
      refused('evaluation of a missing checkpoint', '/nonexistent/ckpt-1',
              '--checkpoint=/nonexistent/ckpt-1', module='gorila_tf.tools.evaluate'),
      refused('evaluation of a missing policy', '/nonexistent/policy',
              '--policy=/nonexistent/policy', module='gorila_tf.tools.evaluate'),
      refused('unknown evaluation protocol', "'sticky'", '--run_dir=/nonexistent',
              '--protocol=sticky', module='gorila_tf.tools.evaluate'),
      refused('play of a missing policy', '/nonexistent/policy',
              '--policy=/nonexistent/policy', module='gorila_tf.tools.play'),
      # --- a damaged or mismatched run directory (copies of a trained one) ---
      refused('resume with another game', 'ALE/Pong-v5', '--config=pong',
              trained=True),
      refused('resume with another network', 'network', *cartpole,
              '--set=network.mlp_layers=32,32', trained=True),
      # The tools read the run's config.json; the launcher's command line
      # says the config, and a resume writes config.json again.
      refused('config.json cut short (evaluation)', 'config.json',
              module='gorila_tf.tools.evaluate', trained=True, damage=_cut_config),
      refused('config.json with a value of the wrong type (evaluation)',
              'learner.batch_size', module='gorila_tf.tools.evaluate',
              trained=True, damage=_edit_config('learner', 'batch_size', 'many')),
      Case('config.json cut short (resume)', LAUNCH, (*cartpole, _more()),
           'handled', says='resumed from', trained=True, damage=_cut_config),
      Case('newest checkpoint garbled', LAUNCH, (*cartpole, _more()), 'handled',
           says='resumed from', trained=True, damage=_garble_newest_checkpoint),
      Case('every checkpoint garbled', LAUNCH, (*cartpole, _more()), 'refused',
           names='checkpoint', trained=True, damage=_garble_every_checkpoint),
      Case('replay checkpoint garbled', LAUNCH, (*cartpole, _more()), 'handled',
           says='starts with an empty replay', trained=True, damage=_garble_replay),
      Case('LEASE of garbage', LAUNCH, (*cartpole, _more(),
                                        '--set=run.lease_timeout_s=4'),
           'handled', says='taken over', trained=True,
           damage=_write('LEASE', 'not a lease\n')),
  ]


def _digest(run_dir: str) -> dict[str, str]:
  """sha256 of every file under run_dir but its task logs, which a refusal
  made by a task adds its lines to ({} when run_dir does not exist)."""
  digests = {}
  for root, _, files in os.walk(run_dir):
    if os.path.relpath(root, run_dir).split(os.sep)[0] == 'logs':
      continue
    for name in files:
      path = os.path.join(root, name)
      with open(path, 'rb') as f:
        digests[os.path.relpath(path, run_dir)] = hashlib.sha256(f.read()).hexdigest()
  return digests


def _run(module: str, args, env=(), timeout: float = 300) -> subprocess.CompletedProcess:
  full_env = dict(os.environ, **dict(env))
  return subprocess.run([sys.executable, '-m', module, *args], cwd=REPO,
                        env=full_env, capture_output=True, text=True,
                        timeout=timeout)


def train_once(base: str) -> str:
  """The short CartPole run the damaged-directory cases copy."""
  run_dir = os.path.join(base, 'trained')
  proc = subprocess.run(
      launch.local_command('cartpole', run_dir,
                           [f'run.max_frames={TRAINED_FRAMES}',
                            'run.checkpoint_every_s=2'],
                           '--progress=off', '--max_wall_s=240'),
      cwd=REPO, capture_output=True, text=True, timeout=300)
  if proc.returncode != 0:
    raise RuntimeError(f'the trained run for the sweep failed: {proc.stdout[-2000:]}')
  os.remove(os.path.join(run_dir, 'DONE'))  # so that a resume trains on
  return run_dir


def error_lines(stdout: str, stderr: str) -> list[str]:
  """The `error:` lines a user sees: a command's own (stderr), or a task's
  on the launcher's console (`[chief] error: ...`)."""
  return [l for l in stderr.splitlines() if l.startswith('error:')] + [
      l for l in stdout.splitlines() if re.match(r'\[\w+\] error:', l)]


def _checkpoint_number(name: str) -> Optional[int]:
  match = re.match(r'checkpoints/ckpt-(\d+)\.', name)
  return int(match.group(1)) if match else None


def lost_checkpoints(before: dict[str, str], after: dict[str, str]) -> list[str]:
  """Checkpoint files gone that their rotation does not explain: the run
  keeps its newest run.keep_checkpoints, so one older than every checkpoint
  now on disk was rotated out; a newer one missing was lost."""
  numbers_after = [n for n in map(_checkpoint_number, after) if n is not None]
  oldest_kept = min(numbers_after, default=None)
  return [name for name in before if name not in after
          and _checkpoint_number(name) is not None
          and (oldest_kept is None or _checkpoint_number(name) >= oldest_kept)]


def judge(case: Case, code: int, stdout: str, stderr: str,
          before: dict[str, str], after: dict[str, str]) -> list[str]:
  """What is wrong with what the case got ([] when it got what it must)."""
  errors = error_lines(stdout, stderr)
  wrong = []
  if case.expect == 'refused':
    if code != exit_codes.BAD_INPUT:
      wrong.append(f'exit {code}, not {exit_codes.BAD_INPUT}')
    if len(errors) != 1:
      wrong.append(f'{len(errors)} error lines, not 1')
    elif case.names not in errors[0]:
      wrong.append(f'the error line does not name {case.names!r}')
    if after != before:
      changed = sorted(set(after.items()) ^ set(before.items()))
      wrong.append(f'the run directory changed: {changed[0][0]} and '
                   f'{len(changed) - 1} more')
  else:
    if code != case.code:
      wrong.append(f'exit {code}, not {case.code}')
    if case.says not in stdout + stderr:
      wrong.append(f'no {case.says!r} in its output')
    lost = lost_checkpoints(before, after)
    if lost:
      wrong.append(f'checkpoints lost: {lost[:3]}')
  return wrong


def try_case(case: Case, base: str, trained: Optional[str]) -> dict[str, Any]:
  """Runs one case in a directory of its own; its record."""
  slug = ''.join(c if c.isalnum() else '_' for c in case.name)
  run_dir = os.path.join(base, slug)
  if case.trained:
    shutil.copytree(trained, run_dir)
    if case.damage:
      case.damage(run_dir)
  args = list(case.args)
  if (case.module == LAUNCH or case.trained) and not any(
      a.startswith(('--run_dir=', '--checkpoint=', '--policy=')) for a in args):
    args.append(f'--run_dir={run_dir}')
  if case.module == LAUNCH:
    args.append('--progress=off')
  before = _digest(run_dir)
  start = time.monotonic()
  proc = _run(case.module, args, case.env)
  after = _digest(run_dir)
  errors = error_lines(proc.stdout, proc.stderr)
  said = [l for l in (proc.stdout + proc.stderr).splitlines()
          if case.says and case.says in l]
  wrong = judge(case, proc.returncode, proc.stdout, proc.stderr, before, after)
  return {'name': case.name, 'command': ' '.join([case.module, *case.args]),
          'env': dict(case.env), 'expect': case.expect, 'exit': proc.returncode,
          'error_lines': errors, 'said': (said or errors or [''])[0],
          'seconds': round(time.monotonic() - start, 1),
          'ok': not wrong, 'wrong': wrong,
          'tail': '' if not wrong else (proc.stdout + proc.stderr)[-1500:]}


def measure(only: Optional[list[str]] = None) -> dict[str, Any]:
  """Runs every case (or those named in `only`); the records and a count."""
  chosen = [c for c in cases() if not only or c.name in only]
  base = tempfile.mkdtemp(prefix='gorila-bad-input-')
  try:
    trained = train_once(base) if any(c.trained for c in chosen) else None
    records = [try_case(case, base, trained) for case in chosen]
  finally:
    shutil.rmtree(base, ignore_errors=True)
  return {'cases': records, 'tried': len(records),
          'wrong': sum(not r['ok'] for r in records)}


def table(result: dict[str, Any]) -> str:
  """The sweep as a Markdown table: each case, its exit, its line."""
  lines = [f'[bad_input] {result["tried"]} cases, {result["wrong"]} not as they '
           'must be', '', '| bad input | expected | exit | what it said | as it must |',
           '|---|---|---|---|---|']
  for r in result['cases']:
    said = (r['said'] or '(nothing)').replace('|', '\\|')
    verdict = 'yes' if r['ok'] else 'no: ' + '; '.join(r['wrong'])
    lines.append(f'| {r["name"]} | {r["expect"]} | {r["exit"]} | {said} | {verdict} |')
  return '\n'.join(lines)
