"""The chief's books that keep one silent bundle from stalling the rest:
in-flight closures with an overdue rule, bundle health probed with deadlines,
replay checkpoints off the loop. Real Reverb servers, fake closures."""

import threading
import time

import portpicker
import pytest
import reverb

from gorila_tf.agent import replay
from gorila_tf.runtime import bookkeeping
from gorila_tf.runtime import checkpointing


class FakeRemoteValue:
  """A closure's result that arrives when `release()` is called."""

  def __init__(self, value=None, error=None):
    self._done = threading.Event()
    self._value, self._error = value, error

  def release(self):
    self._done.set()

  def fetch(self):
    self._done.wait()
    if self._error:
      raise self._error
    return self._value


def test_wait_any_returns_whatever_finished_and_never_waits_for_a_stuck_one():
  in_flight = bookkeeping.InFlight(overdue_s=60)
  stuck, quick = FakeRemoteValue({'n': 1}), FakeRemoteValue({'n': 2})
  in_flight.add(stuck)
  in_flight.add(quick)
  quick.release()
  assert in_flight.wait_any(timeout_s=5) == [{'n': 2}]
  start = time.monotonic()
  assert in_flight.wait_any(timeout_s=0.2) == []  # the stuck one: no wait past the timeout
  assert time.monotonic() - start < 2
  assert len(in_flight) == 1


def test_a_closure_in_flight_longer_than_overdue_s_stops_counting_as_waiting():
  in_flight = bookkeeping.InFlight(overdue_s=0.3)
  stuck = FakeRemoteValue({'n': 1})
  in_flight.add(stuck)
  assert (in_flight.waiting(), in_flight.overdue()) == (1, 0)
  time.sleep(0.4)
  assert (in_flight.waiting(), in_flight.overdue()) == (0, 1)
  stuck.release()  # its result is still taken when it comes
  assert in_flight.wait_any(timeout_s=5) == [{'n': 1}]
  assert len(in_flight) == 0


def test_wait_all_leaves_the_stuck_closures_behind_after_its_timeout():
  in_flight = bookkeeping.InFlight(overdue_s=60)
  values = [FakeRemoteValue({'n': i}) for i in range(3)]
  for v in values:
    in_flight.add(v)
  values[0].release()
  values[2].release()
  results = in_flight.wait_all(timeout_s=0.5)
  assert sorted(r['n'] for r in results) == [0, 2]
  assert len(in_flight) == 1


def test_a_closures_error_is_raised_in_the_chiefs_thread():
  in_flight = bookkeeping.InFlight(overdue_s=60)
  failing = FakeRemoteValue(error=RuntimeError('ps lost'))
  in_flight.add(failing)
  failing.release()
  with pytest.raises(RuntimeError, match='ps lost'):
    in_flight.wait_any(timeout_s=5)


def replay_server(port=None):
  table = reverb.Table(replay.REPLAY_TABLE, reverb.selectors.Uniform(),
                       reverb.selectors.Fifo(), 10,
                       reverb.rate_limiters.MinSize(1))
  return reverb.Server([table], port=port)


def wait_until(condition, timeout_s=20.0):
  deadline = time.monotonic() + timeout_s
  while time.monotonic() < deadline:
    if condition():
      return True
    time.sleep(0.05)
  return False


def test_a_silent_bundle_is_reported_unresponsive_and_rejoins_when_it_answers():
  port = portpicker.pick_unused_port()
  server = replay_server(port)
  health = bookkeeping.BundleHealth([f'localhost:{port}'], timeout_s=2.0,
                                    probe_every_s=0.2)
  try:
    time.sleep(0.5)
    assert health.check() == [] and health.responsive == [True]
    server.stop()  # the bundle goes silent
    assert wait_until(lambda: health.check() == [0])
    assert health.unresponsive_periods == [1]
    summary = health.summary()
    assert summary['bundles/0/responsive'] == 0
    assert summary['bundles/0/silent_s'] > 2.0
    assert summary['cluster/responsive_bundles'] == 0
    server = replay_server(port)  # it answers again, nothing restarted by us
    assert wait_until(lambda: health.check() == [])
    assert health.responsive == [True]
    assert health.last_silence_s[0] > 2.0
  finally:
    health.close()
    server.stop()


def test_replay_checkpoints_skip_silent_bundles_and_checkpoint_the_others(tmp_path):
  server = reverb.Server(
      [reverb.Table(replay.REPLAY_TABLE, reverb.selectors.Uniform(),
                    reverb.selectors.Fifo(), 10, reverb.rate_limiters.MinSize(1))],
      checkpointer=reverb.checkpointers.DefaultCheckpointer(str(tmp_path)))
  silent = f'localhost:{portpicker.pick_unused_port()}'
  try:
    checkpoints = checkpointing.ReplayCheckpoints(
        [f'localhost:{server.port}', silent])
    asked, skipped = checkpoints.request(responsive=[True, False])
    assert (asked, skipped) == ([0], [1])
    checkpoints.wait(timeout_s=30)
    assert list(tmp_path.iterdir()), 'bundle 0 wrote no replay checkpoint'
  finally:
    server.stop()



def test_a_replay_checkpoint_that_fails_is_one_line_not_a_thread_traceback(
    monkeypatch, caplog):
  # On a full disk Reverb's client raised IndexError ("...items.tfrecord; No
  # space left on device") in the chief's checkpoint thread, which printed
  # its traceback on the console (the disk-full test, a fresh clone).
  class FullDisk:
    def __init__(self, address):
      del address

    def checkpoint(self):
      raise IndexError('/run/replay/bundle_0/items.tfrecord; No space left on device')

  monkeypatch.setattr(checkpointing.reverb, 'Client', FullDisk)
  uncaught = []
  monkeypatch.setattr(threading, 'excepthook', uncaught.append)
  checkpoints = checkpointing.ReplayCheckpoints(['localhost:1'])
  assert checkpoints.request(responsive=[True]) == ([0], [])
  checkpoints.wait(timeout_s=30)
  assert not uncaught
  assert ('replay of bundle 0 not checkpointed: IndexError: /run/replay/'
          'bundle_0/items.tfrecord; No space left on device') in caplog.text


def test_percentiles_are_named_after_the_tag_and_empty_without_samples():
  from gorila_tf.runtime import metrics  # pylint: disable=g-import-not-at-top
  assert metrics.percentiles('s', []) == {}
  got = metrics.percentiles('s', list(range(101)))
  assert got == {'s_p50': 50.0, 's_p90': 90.0, 's_p99': 99.0}
