"""The evaluator: scores checkpoints with the paper's protocol.

Protocol (Nair et al. 2015, following Mnih et al. 2015): each episode starts
with up to `eval.noop_max` random no-op actions, the agent acts
epsilon-greedily with `eval.epsilon` (0.05), episodes are capped at
`eval.max_episode_frames` (18,000 frames = 5 minutes), and the score is the
mean over `eval.episodes` (30) episodes. Rewards are not clipped and a lost
life does not end the episode.

The evaluator reads checkpoints only: a sharded checkpoint restores into the
plain, unsharded network built here. It runs within a CPU budget
(`eval.cpu_cores`), so that training does not slow down when the agent
plays well and the episodes grow long; at the same priority as training,
because below it (it once ran at nice 10) a machine that training keeps
busy gives it far less than its budget, and a late Pong evaluation (30
games of up to 18,000 frames) took 20 minutes to reach the record.
`eval.quick_episodes` plays fewer episodes in the periodic evaluations; the
last checkpoint's, and the one that would stop the run, play them all. It writes
(tb/eval/, eval.jsonl) only under its chief's lease on the run directory:
while that lease is live, or once the chief has finished and released it
(the final evaluation); see lease.Tenant.

A run stopped by the launcher's --max_wall_s is not done, but its newest
checkpoint is the result its user waits for: the launcher stops training,
then sends run_dir.FINAL_EVALUATION_SIGNAL, and the evaluator scores that
checkpoint without the CPU budget (nothing else runs now) and exits. That
row, like the one of a run's last checkpoint, is marked `final`.

Each row carries `wall_time_s`, the seconds of training at which its
checkpoint was written (summed over restarts and resumes; the time a run
stood stopped is not counted), so a score's time can be read beside its
frames and updates.

With `run.stop_at_eval_return`, the first row at or above it ends the run:
the evaluator exports that checkpoint's greedy policy as a SavedModel in
<run_dir>/policy, then records the row in <run_dir>/PLAYS.json, on which
the chief stops training (done) and the launcher says how long it took.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import threading
import time
from typing import Optional

import numpy as np
import tensorflow as tf
from absl import logging

from gorila_tf import config as config_lib
from gorila_tf import errors
from gorila_tf import reference
from gorila_tf.agent import actor as actor_lib
from gorila_tf.agent import environments
from gorila_tf.agent import networks
from gorila_tf.runtime import checkpointing
from gorila_tf.runtime import lease as lease_lib
from gorila_tf.runtime import metrics
from gorila_tf.runtime import policy as policy_lib
from gorila_tf.runtime import records
from gorila_tf.runtime import run_dir as run_dir_lib


@dataclasses.dataclass(frozen=True)
class EvalResult:
  returns: tuple[float, ...]
  lengths: tuple[int, ...]  # frames
  pictures: tuple = ()  # the first episode of env 0, up to eval.record_frames

  @property
  def mean(self) -> float:
    return float(np.mean(self.returns))

  @property
  def stderr(self) -> float:
    n = len(self.returns)
    return float(np.std(self.returns, ddof=1) / math.sqrt(n)) if n > 1 else 0.0


def episodes_per_env(episodes: int, num_envs: int) -> np.ndarray:
  """Splits `episodes` evenly over envs, so short episodes are not favoured."""
  counts = np.full(num_envs, episodes // num_envs)
  counts[:episodes % num_envs] += 1
  return counts


class CpuBudget:
  """Keeps a stretch of this process's work within `cores` of CPU on average.

  `spend()` after each piece of work sleeps as long as the CPU used since
  the budget was made is ahead of `cores` x the wall time since then. A
  budget is made per evaluation, so idle time between evaluations is not
  saved up. `cores` 0: no budget; nor once `lifted` is set.
  """

  def __init__(self, cores: float, clock=time.monotonic,
               cpu_time=time.process_time, sleep=time.sleep,
               lifted: Optional[threading.Event] = None):
    self._cores, self._clock, self._cpu, self._sleep = cores, clock, cpu_time, sleep
    self._lifted = lifted
    self._start, self._cpu_start = clock(), cpu_time()
    self.slept_s = 0.0

  def spend(self) -> None:
    if self._cores <= 0 or (self._lifted is not None and self._lifted.is_set()):
      return
    used = self._cpu() - self._cpu_start
    ahead = used / self._cores - (self._clock() - self._start)
    if ahead > 0:
      self._sleep(ahead)
      self.slept_s += ahead


def evaluate(q_net: tf.Module, config: config_lib.GorilaConfig,
             info: environments.EnvInfo, seed: int,
             unbudgeted: Optional[threading.Event] = None) -> EvalResult:
  """Plays `eval.episodes` episodes with the evaluation protocol, within
  `eval.cpu_cores` of CPU until `unbudgeted` is set."""
  e = config.eval
  budget = CpuBudget(e.cpu_cores, lifted=unbudgeted)
  env = environments.VectorEnv(config.env, e.parallel_envs, seed,
                               noop_max=e.noop_max,
                               max_episode_frames=e.max_episode_frames,
                               render=e.record_frames > 0 and
                               environments.needs_render(config.env.id,
                                                         e.record_view))
  greedy = actor_lib.make_greedy_policy(q_net, info.observation_shape,
                                        tf.as_dtype(info.frame_dtype))
  rng = np.random.default_rng(seed)
  remaining = episodes_per_env(e.episodes, e.parallel_envs)
  returns, lengths = [], []
  episode_return = np.zeros(e.parallel_envs)
  episode_steps = np.zeros(e.parallel_envs, np.int64)
  resetting = np.zeros(e.parallel_envs, bool)
  observations = env.reset()
  pictures, recording = [], e.record_frames > 0
  try:
    while remaining.sum() > 0:
      if recording:
        pictures.append(env.picture(observations, e.record_view))
      actions = actor_lib.epsilon_greedy(greedy(observations).numpy(), e.epsilon,
                                         info.num_actions, rng, e.parallel_envs)
      observations, rewards, terminated, truncated, _ = env.step(actions)
      counting = ~resetting & (remaining > 0)
      episode_return += np.where(counting, rewards, 0.0)
      episode_steps += counting
      ended = counting & (terminated | truncated)
      if recording and (ended[0] or len(pictures) >= e.record_frames):
        recording = False
        env.stop_rendering()
      for i in np.flatnonzero(ended):
        returns.append(float(episode_return[i]))
        lengths.append(int(episode_steps[i]) * info.frames_per_step)
        remaining[i] -= 1
      episode_return[ended] = 0.0
      episode_steps[ended] = 0
      resetting = ~resetting & (terminated | truncated)
      budget.spend()
  finally:
    env.close()
  return EvalResult(tuple(returns), tuple(lengths), tuple(pictures))


def unreadable(checkpoint_path: str, error: BaseException
               ) -> errors.CheckpointUnreadable:
  """The one line for a checkpoint that TensorFlow cannot read."""
  return errors.CheckpointUnreadable(
      f'checkpoint {checkpoint_path} is unreadable ({errors.error_line(error)})')


def restore_online_network(checkpoint_path: str, config: config_lib.GorilaConfig,
                           info: environments.EnvInfo) -> tuple[tf.Module, int, int]:
  """Loads a checkpoint's online network into a plain network.

  Returns:
    (network, updates, frames) of that checkpoint.

  Raises:
    errors.CheckpointUnreadable: it is cut short or garbled (a chaos run's
      evaluator met one and crashed with TensorFlow's IndexError).
  """
  q_net = networks.make_q_network(config.network, info)
  frames = tf.Variable(0, dtype=tf.int64)
  checkpoint = tf.train.Checkpoint(q_network=q_net, frames=frames)
  try:
    checkpoint.restore(checkpoint_path).expect_partial()
  except checkpointing.UNREADABLE as e:
    raise unreadable(checkpoint_path, e) from None
  updates = int(checkpoint_path.rsplit('-', 1)[-1])
  return q_net, updates, int(frames.numpy())


def evaluate_checkpoint(checkpoint_path: str, config: config_lib.GorilaConfig,
                        info: environments.EnvInfo,
                        unbudgeted: Optional[threading.Event] = None
                        ) -> tuple[dict, tuple]:
  """Restores and evaluates one checkpoint (see `evaluate`).

  Returns:
    (its results-table row, the recorded pictures of one episode).
  """
  q_net, updates, frames = restore_online_network(checkpoint_path, config, info)
  # Read now, guarded as the restore is: a checkpoint cut short while it was
  # evaluated (a chaos fault, after its restore) met this read at the end,
  # unguarded; now it is one line and costs no episodes.
  wall_time_s = checkpoint_wall_time_s(checkpoint_path)
  result = evaluate(q_net, config, info, seed=config.run.seed + updates,
                    unbudgeted=unbudgeted)
  row = reference.table_row(config.env.id, result.mean, result.stderr,
                            len(result.returns), protocol='noop', frames=frames)
  row.update(updates=updates, checkpoint=checkpoint_path)
  if wall_time_s is not None:
    row['wall_time_s'] = round(wall_time_s, 1)
  return row, result.pictures


def checkpoint_wall_time_s(checkpoint_path: str) -> Optional[float]:
  """The seconds of training a chief's checkpoint was written at (None for
  a checkpoint without the counter); CheckpointUnreadable if it is cut short
  or garbled there."""
  try:
    reader = tf.train.load_checkpoint(checkpoint_path)
    return float(reader.get_tensor('wall_time_s/.ATTRIBUTES/VARIABLE_VALUE'))
  except tf.errors.NotFoundError:
    return None
  except checkpointing.UNREADABLE as e:
    raise unreadable(checkpoint_path, e) from None


def export_if_it_plays(row: dict, config: config_lib.GorilaConfig,
                       info: environments.EnvInfo, run_dir: str) -> bool:
  """If `row` reached run.stop_at_eval_return: exports the greedy policy of
  its checkpoint to <run_dir>/policy, then records the row in PLAYS.json,
  and returns True."""
  target = config.run.stop_at_eval_return
  if target is None or row['mean'] < target:
    return False
  q_net, _, _ = restore_online_network(row['checkpoint'], config, info)
  out = os.path.join(run_dir, run_dir_lib.POLICY_DIR)
  policy_lib.export(q_net, out, config)
  run_dir_lib.mark_plays(run_dir, {**row, 'policy': out})
  logging.info('evaluation %.1f of %s reached run.stop_at_eval_return=%g: its '
               'policy is exported to %s', row['mean'], row['checkpoint'],
               target, out)
  return True


def _write_row(writer: metrics.SummaryWriter, row: dict, pictures: tuple) -> None:
  if pictures:
    height, width = pictures[0].shape[:2]
    writer.animation('eval/episode', records.gif_bytes(list(pictures), fps=15),
                     width * 2, height * 2, row['frames'])
  values = {records.TAGS['eval_return']: row['mean'],
            'eval/episodic_return_stderr': row['stderr'],
            'eval/human_normalized_score': row['human_normalized'],
            'eval/dqn_published': row['dqn'],
            'eval/gorila_published': row['gorila']}
  extra = {k: row[k] for k in ('wall_time_s', 'final') if k in row}
  writer.scalars(row['frames'], values, updates=row['updates'],
                 episodes=row['episodes'], checkpoint=row['checkpoint'], **extra)


LEASE_POLL_S = 1.0  # seconds between looks at the chief's lease


def wait_for_lease(tenant: lease_lib.Tenant, run_dir: str,
                   stopped: Optional[threading.Event] = None) -> None:
  """Returns once the chief's lease is live; or the run is done and the
  lease released; or training was `stopped` by the launcher and no other
  launch's chief holds the lease.

  Raises:
    errors.LeaseHeld: another launch's chief took the run directory over.
  """
  waited = 0.0
  while not tenant.owner_live():
    if run_dir_lib.is_done(run_dir) and tenant.released():
      return
    # The launcher stopped our chief (gone now, even if killed before it
    # released its lease): the directory is ours unless another launch's
    # chief has taken it.
    if (stopped is not None and stopped.is_set()
        and not tenant.held_by_another_launch()):
      return
    if waited and waited % 60 < LEASE_POLL_S:
      logging.info('evaluator: waiting for the chief\'s lease on %s (%.0f s)',
                   run_dir, waited)
    time.sleep(LEASE_POLL_S)
    waited += LEASE_POLL_S


def score(checkpoint: str, config: config_lib.GorilaConfig,
          info: environments.EnvInfo, run_dir: str,
          writer: metrics.SummaryWriter, tenant: lease_lib.Tenant,
          stopped: threading.Event, episodes: int, final: bool) -> dict:
  """Evaluates `checkpoint` over `episodes` episodes and writes its row
  (marked `final` for a run's last checkpoint) under the chief's lease."""
  if stopped.is_set():
    logging.info('evaluator: training stopped before its frame budget; '
                 'scoring %s without the CPU budget', checkpoint)
  started = time.monotonic()
  config = dataclasses.replace(
      config, eval=dataclasses.replace(config.eval, episodes=episodes))
  row, pictures = evaluate_checkpoint(checkpoint, config, info, stopped)
  if final:
    row['final'] = True  # training had ended: its last checkpoint
  wait_for_lease(tenant, run_dir, stopped)
  _write_row(writer, row, pictures)
  logging.info('eval of %s: %s (%.0f s)', checkpoint, reference.format_row(row),
               time.monotonic() - started)
  return row


def scored_episodes(run_dir: str, checkpoint: str) -> int:
  """The most episodes an eval.jsonl row of `checkpoint` was scored on, 0 if
  none (rows name their checkpoint by path; the run directory may have moved)."""
  name = os.path.basename(checkpoint)
  return max((int(r.get('episodes', 0)) for r in
              records.read_progress(run_dir, 'eval.jsonl')
              if os.path.basename(r.get('checkpoint', '')) == name), default=0)


def run(config: config_lib.GorilaConfig, run_dir: str,
        poll_s: Optional[float] = None) -> None:
  """The evaluator role: evaluate each new checkpoint until the run is done."""
  info = environments.env_info(config.env)
  if run_dir_lib.plays_at(run_dir, config.run.stop_at_eval_return):
    logging.info('evaluator: the agent of %s already scored '
                 'run.stop_at_eval_return (%s): nothing to evaluate', run_dir,
                 run_dir_lib.PLAYS_FILE)
    return
  tenant = lease_lib.Tenant(run_dir, config.run.lease_timeout_s)
  stopped = threading.Event()  # training stopped short of its budget
  signal.signal(run_dir_lib.FINAL_EVALUATION_SIGNAL, lambda *_: stopped.set())
  wait_for_lease(tenant, run_dir, stopped)  # before tb/eval/ is created
  writer = metrics.SummaryWriter(run_dir, subdir=os.path.join('tb', 'eval'),
                                 progress_file='eval.jsonl')
  checkpoint_dir = os.path.join(run_dir, 'checkpoints')
  target, full = config.run.stop_at_eval_return, config.eval.episodes
  # A resumed run's newest checkpoint may already have its row (the last
  # launch's final evaluation): it is not scored again.
  newest = tf.train.latest_checkpoint(checkpoint_dir)
  episodes = scored_episodes(run_dir, newest) if newest else 0
  evaluated = newest if episodes else None
  evaluated_in_full = episodes >= full  # `evaluated` was scored on all eval.episodes
  last_eval = float('-inf')  # the next new checkpoint is due at once
  while True:
    # Read before the checkpoint: no race (training has ended when either is).
    done = run_dir_lib.is_done(run_dir) or stopped.is_set()
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    try:
      if done and latest and not (latest == evaluated and evaluated_in_full):
        # The run's last checkpoint, on the whole protocol: also when a quick
        # evaluation took it before the end of training was seen.
        row = score(latest, config, info, run_dir, writer, tenant, stopped,
                    episodes=full, final=True)
        evaluated, evaluated_in_full = latest, True
        export_if_it_plays(row, config, info, run_dir)
      elif done:
        break
      elif (latest and latest != evaluated
            and time.monotonic() - last_eval >= config.eval.every_s):
        quick = config.eval.quick_episodes if config.eval.quick_episodes < full else 0
        row = score(latest, config, info, run_dir, writer, tenant, stopped,
                    episodes=quick or full, final=False)
        if quick and target is not None and row['mean'] >= target:
          # The quick score says the agent may play: the protocol decides.
          row = score(latest, config, info, run_dir, writer, tenant, stopped,
                      episodes=full, final=False)
        evaluated, last_eval = latest, time.monotonic()
        evaluated_in_full = row['episodes'] == full
        if export_if_it_plays(row, config, info, run_dir):
          break  # the chief stops training on PLAYS.json
      else:
        time.sleep(poll_s or min(5.0, config.eval.every_s))
    except errors.CheckpointUnreadable as e:  # cut short or garbled
      logging.warning('evaluator: %s: not evaluated', e)
      evaluated, evaluated_in_full = latest, True  # skipped; the next one is due
  writer.close()
