"""The evaluation protocol on real Pong: frame cap, episode split, the row."""

import json
import threading

import pytest

from gorila_tf import config as config_lib
from gorila_tf.agent import environments
from gorila_tf.agent import networks
from gorila_tf.runtime import evaluator
from gorila_tf.runtime import records
from gorila_tf.runtime import run_dir as run_dir_lib


def pong_config(*overrides):
  return config_lib.resolve('pong', ['eval.episodes=4', 'eval.parallel_envs=2',
                                     *overrides])


def test_episodes_are_capped_at_max_episode_frames():
  # The paper caps evaluation episodes at 18,000 frames; a short cap shows
  # the mechanism on an untrained agent (whose Pong games last longer).
  config = pong_config('eval.max_episode_frames=400')
  info = environments.env_info(config.env)
  q_net = networks.make_q_network(config.network, info)
  result = evaluator.evaluate(q_net, config, info, seed=0)
  assert len(result.returns) == 4
  assert set(result.lengths) == {400}


def test_paper_protocol_defaults():
  e = config_lib.resolve('atari').eval
  assert (e.episodes, e.epsilon, e.noop_max, e.max_episode_frames) == (30, 0.05, 30, 18_000)


@pytest.mark.parametrize('episodes, envs, expected', [
    (30, 5, [6, 6, 6, 6, 6]),
    (10, 4, [3, 3, 2, 2]),
])
def test_episodes_are_split_evenly_so_short_ones_are_not_favoured(episodes, envs,
                                                                  expected):
  assert evaluator.episodes_per_env(episodes, envs).tolist() == expected


def test_stderr_is_the_standard_error_of_the_mean_by_hand():
  # returns 1, 3: mean 2, sample std sqrt(2), stderr sqrt(2)/sqrt(2) = 1
  result = evaluator.EvalResult((1.0, 3.0), (10, 10))
  assert result.mean == 2.0 and result.stderr == pytest.approx(1.0)


class FakeTime:
  """A clock and a CPU clock the test moves by hand; sleeping moves the clock."""

  def __init__(self):
    self.now, self.cpu = 100.0, 5.0

  def sleep(self, seconds):
    self.now += seconds


def test_the_cpu_budget_sleeps_off_what_was_used_beyond_its_cores():
  t = FakeTime()
  budget = evaluator.CpuBudget(0.25, clock=lambda: t.now,
                               cpu_time=lambda: t.cpu, sleep=t.sleep)
  t.now += 1.0
  t.cpu += 1.0  # a second of CPU in a second: 4x the budget of 0.25 cores
  budget.spend()
  assert t.now == 104.0 and budget.slept_s == 3.0  # 1 CPU-s = 4 s at 0.25
  t.now += 1.0  # idle since: nothing to sleep
  budget.spend()
  assert budget.slept_s == 3.0


def test_a_lifted_cpu_budget_no_longer_sleeps():
  # Training stopped (--max_wall_s): the final evaluation runs at full speed.
  t, lifted = FakeTime(), threading.Event()
  budget = evaluator.CpuBudget(0.25, clock=lambda: t.now, cpu_time=lambda: t.cpu,
                               sleep=t.sleep, lifted=lifted)
  t.cpu += 1.0
  budget.spend()
  assert budget.slept_s == 4.0
  lifted.set()
  t.cpu += 1.0
  budget.spend()
  assert budget.slept_s == 4.0


def test_no_cpu_budget_never_sleeps():
  t = FakeTime()
  budget = evaluator.CpuBudget(0.0, clock=lambda: t.now, cpu_time=lambda: t.cpu,
                               sleep=t.sleep)
  t.cpu += 10.0
  budget.spend()
  assert budget.slept_s == 0.0


def test_a_checkpoint_already_scored_is_known_by_its_name(tmp_path):
  # A resumed run's evaluator skips the newest checkpoint when the last
  # launch scored it (seen 2026-12-06: a final 30-episode row, then the
  # resumed evaluator scored the same checkpoint again on 10).
  rows = [{'checkpoint': '/old/place/checkpoints/ckpt-500', 'episodes': 10},
          {'checkpoint': '/old/place/checkpoints/ckpt-900', 'episodes': 10},
          {'checkpoint': '/old/place/checkpoints/ckpt-900', 'episodes': 30}]
  (tmp_path / 'eval.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
  checkpoints = str(tmp_path / 'checkpoints')
  assert evaluator.scored_episodes(str(tmp_path), f'{checkpoints}/ckpt-900') == 30
  assert evaluator.scored_episodes(str(tmp_path), f'{checkpoints}/ckpt-500') == 10
  assert evaluator.scored_episodes(str(tmp_path), f'{checkpoints}/ckpt-90') == 0
  assert evaluator.scored_episodes(str(tmp_path / 'none'), f'{checkpoints}/ckpt-9') == 0


# The corrupt_checkpoint fault cuts the newest checkpoint short: before the
# evaluator restores it, or (the 30-minute chaos run of 2026-12-07) while it
# evaluates it, after the restore, so that only its read of the chief's
# wall_time_s counter met the cut (a traceback, the evaluator restarted).
# (Cut to nothing: in this small checkpoint the counter lies in its first 16
# bytes, the fault's cut.)
@pytest.mark.parametrize('cut', ['before its restore', 'after its restore'])
def test_a_checkpoint_cut_short_is_one_line_and_not_evaluated(
    tmp_path, caplog, monkeypatch, cut):
  import os  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from gorila_tf import errors  # pylint: disable=g-import-not-at-top
  config = config_lib.resolve('cartpole')
  info = environments.env_info(config.env)
  q_net = networks.make_q_network(config.network, info)
  frames = tf.Variable(123, dtype=tf.int64)
  wall_time_s = tf.Variable(60.0, dtype=tf.float64)  # as the chief's
  path = tf.train.Checkpoint(q_network=q_net, frames=frames,
                             wall_time_s=wall_time_s).write(
                                 str(tmp_path / 'checkpoints' / 'ckpt-7'))
  evaluator.restore_online_network(path, config, info)  # reads, intact
  assert evaluator.checkpoint_wall_time_s(path) == 60.0
  data = tmp_path / 'checkpoints' / [p for p in os.listdir(tmp_path / 'checkpoints')
                                     if p.startswith('ckpt-7.data')][0]

  def cut_short():
    with open(data, 'r+b') as f:
      f.truncate(16 if cut == 'before its restore' else 0)

  unreadable = (r'^checkpoint \S+ckpt-7 is unreadable \(IndexError: Read less '
                'bytes')
  if cut == 'before its restore':
    cut_short()
    with pytest.raises(errors.CheckpointUnreadable, match=unreadable):
      evaluator.restore_online_network(path, config, info)
  else:
    restore = evaluator.restore_online_network

    def restore_then_cut(*args):
      restored = restore(*args)
      cut_short()
      return restored

    monkeypatch.setattr(evaluator, 'restore_online_network', restore_then_cut)
  # The evaluator's loop on a finished run whose last checkpoint is that one:
  # one line, no row, and it ends.
  tf.compat.v1.train.update_checkpoint_state(str(tmp_path / 'checkpoints'), path)
  run_dir_lib.mark_done(str(tmp_path))
  evaluator.run(config, str(tmp_path), poll_s=0.01)
  assert 'ckpt-7 is unreadable (IndexError' in caplog.text
  assert 'not evaluated' in caplog.text
  assert not records.read_progress(str(tmp_path), 'eval.jsonl')
