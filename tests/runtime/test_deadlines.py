"""Calls the caller can stop waiting for (runtime/deadlines.py), and the probe
of a replay server that answers within its deadline or says nothing."""

import threading
import time

import numpy as np
import portpicker
import pytest
import reverb

from gorila_tf import config as config_lib
from gorila_tf.agent import environments
from gorila_tf.agent import replay
from gorila_tf.runtime import deadlines


def test_a_call_that_returns_is_answered_with_its_result():
  call = deadlines.BackgroundCall(lambda x: x * 2, 21)
  assert call.wait(5) and call.result == 42 and call.expected_error() is None


def test_a_hanging_call_is_waited_for_only_as_long_as_asked():
  release = threading.Event()
  call = deadlines.BackgroundCall(release.wait)
  start = time.monotonic()
  assert not call.wait(0.2)
  assert 0.2 <= time.monotonic() - start < 2 and call.age_s() >= 0.2
  release.set()
  assert call.wait(5)


def test_a_client_error_is_handed_back_and_any_other_raised():
  def fails(error):
    raise error
  refused = deadlines.BackgroundCall(fails, reverb.errors.DeadlineExceededError('x'))
  assert refused.wait(5)
  assert isinstance(refused.expected_error(), reverb.errors.ReverbError)
  bug = deadlines.BackgroundCall(fails, ZeroDivisionError('bug'))
  assert bug.wait(5)
  with pytest.raises(ZeroDivisionError):
    bug.expected_error()


def test_the_replay_probe_reads_a_live_tables_counts():
  config = config_lib.resolve('cartpole', ['replay.min_size=1'])
  info = environments.env_info(config.env)
  server = reverb.Server([replay.make_replay_table(config, info)])
  try:
    writer = replay.TransitionWriter(server.localhost_client(), info.frame_stack)
    writer.begin_episode(np.zeros((1, 4), np.float32))
    for _ in range(3):
      writer.add(np.zeros(4, np.float32), 0, 1.0, 1.0)
    writer.end_episode()
    writer.close()
    probe = deadlines.ReplayProbe(f'localhost:{server.port}', replay.REPLAY_TABLE,
                                  timeout_s=2.0)
    stats = probe.stats()
    assert stats == deadlines.ReplayStats(size=3, inserted=3, sampled=0)
  finally:
    server.stop()


def test_the_replay_probe_says_nothing_within_its_deadline_when_none_listens():
  probe = deadlines.ReplayProbe(f'localhost:{portpicker.pick_unused_port()}',
                                replay.REPLAY_TABLE, timeout_s=1.0)
  start = time.monotonic()
  assert probe.stats() is None and time.monotonic() - start < 5
