"""The chief's training loop against a fake cluster: what it schedules, when
it refreshes the target, probes, publishes, summarises and checkpoints, and
how it stops (chief.TrainingLoop)."""

import threading

import pytest
import tensorflow as tf

from gorila_tf import config as config_lib
from gorila_tf import errors
from gorila_tf.runtime import chief
from gorila_tf.runtime import metrics

STEPS = 4  # updates per closure


class Done:
  """A RemoteValue whose closure has finished."""

  def __init__(self, result):
    self._result = result

  def fetch(self):
    return self._result


class FakeCluster:
  """Every closure applies STEPS updates at once; every drain of the actors'
  stats reports 16 env steps (64 frames); time moves 0.1 s per schedule."""

  def __init__(self, max_frames, nan_at=None, collapse_at=None, streams_end=()):
    self.updates = self.frames = 0
    # The schedule() calls (1, 2, ...) at which a replay stream has ended:
    # the coordinator raises the error there, having applied nothing.
    self.streams_end = set(streams_end)
    self.streams_restarted_at = []
    self.max_frames = max_frames
    self.now = 0.0
    self.nan_at, self.collapse_at = nan_at, collapse_at
    self.scheduled = self.published = self.summaries = 0
    self.synced_at, self.probed_at, self.saved_at = [], [], []
    self.wall_time = 0.0

  def budget_spent(self):
    return self.frames >= self.max_frames

  def schedule(self):
    self.scheduled += 1
    if self.scheduled in self.streams_end:
      raise tf.errors.OutOfRangeError(None, None, 'End of sequence')
    self.updates += STEPS
    self.now += 0.1
    nonfinite = int(self.nan_at is not None and self.updates >= self.nan_at)
    return Done({'loss': 0.5, 'mean_q': 1.0, 'applied': STEPS,
                 'nonfinite': nonfinite})

  def restart_replay_streams(self):
    self.streams_restarted_at.append(self.updates)

  def check_finite(self, result):
    if result['nonfinite']:
      raise errors.NumericalError(f'non-finite loss near update {self.updates}')

  def sync_target(self):
    self.synced_at.append(self.updates)

  def plant_faults(self, updates):
    pass

  def check_network(self, updates, window):
    self.probed_at.append(updates)
    if self.collapse_at is not None and updates >= self.collapse_at:
      raise errors.Collapsed(f'collapsed at update {updates}')

  def probe_bundles(self):
    pass

  def count_actor_stats(self):
    self.frames += 64
    return metrics.ActorStats(env_steps=16)

  def set_wall_time(self, seconds):
    self.wall_time = seconds

  def publish(self):
    self.published += 1

  def write_summaries(self, window):
    self.summaries += 1

  def save(self):
    self.saved_at.append(self.updates)
    return f'ckpt-{self.updates}'


def make_config(*overrides):
  return config_lib.resolve('cartpole', [
      'learner.target_update_period=40', 'health.every_updates=100',
      'run.max_closures_in_flight=4', 'run.publish_every_s=1',
      'run.summary_every_s=2', 'run.checkpoint_every_s=5', *overrides])


def run_loop(cluster, config, stop=None):
  loop = chief.TrainingLoop(config, cluster, wall_time_before_s=100.0,
                            now=lambda: cluster.now)
  loop.run(stop or threading.Event())


def test_the_loop_trains_to_the_budget_then_summarises_and_checkpoints_once():
  cluster = FakeCluster(max_frames=6400)
  run_loop(cluster, make_config())
  assert cluster.frames == 6400  # 100 rounds of the loop
  assert cluster.saved_at[-1] == cluster.updates  # the final checkpoint
  assert cluster.wall_time == pytest.approx(100.0 + cluster.now - 0.4, abs=0.5)


def test_the_loop_keeps_the_in_flight_limit_of_closures_scheduled():
  cluster = FakeCluster(max_frames=640)  # 10 rounds
  run_loop(cluster, make_config('run.max_closures_in_flight=4'))
  # 4 at first, then one per finished closure: every round finishes them all.
  assert cluster.scheduled == 4 * 10


def test_the_target_is_refreshed_every_target_update_period_updates():
  cluster = FakeCluster(max_frames=1280)  # 20 rounds of 16 updates
  run_loop(cluster, make_config())
  gaps = [b - a for a, b in zip([0] + cluster.synced_at, cluster.synced_at)]
  assert cluster.synced_at and all(40 <= g < 40 + 16 for g in gaps), cluster.synced_at


def test_the_network_is_probed_at_once_and_every_health_every_updates():
  cluster = FakeCluster(max_frames=1280)
  run_loop(cluster, make_config())
  assert cluster.probed_at[0] == 16  # the first round
  gaps = [b - a for a, b in zip(cluster.probed_at, cluster.probed_at[1:])]
  assert gaps and all(100 <= g < 100 + 16 for g in gaps), cluster.probed_at


def test_publications_summaries_and_checkpoints_follow_their_periods():
  cluster = FakeCluster(max_frames=6400)  # 100 rounds, 0.4 s each: 40 s
  run_loop(cluster, make_config())
  # Due at the first round after each period: every 1.2, 2.0-2.4, 5.2-5.6 s.
  assert 32 <= cluster.published <= 40  # every 1 s
  assert 16 <= cluster.summaries <= 21  # every 2 s, and the last one
  assert 7 <= len(cluster.saved_at) <= 9  # every 5 s, and the last one


def test_a_nonfinite_result_stops_the_loop_without_a_checkpoint():
  cluster = FakeCluster(max_frames=10**9, nan_at=300)
  with pytest.raises(errors.NumericalError, match='non-finite'):
    run_loop(cluster, make_config('run.checkpoint_every_s=1000'))
  assert cluster.saved_at == []


def test_a_collapse_found_by_a_probe_stops_the_loop():
  cluster = FakeCluster(max_frames=10**9, collapse_at=500)
  with pytest.raises(errors.Collapsed):
    run_loop(cluster, make_config())
  assert cluster.probed_at[-1] >= 500


def test_a_stop_ends_the_loop_with_a_last_checkpoint():
  cluster = FakeCluster(max_frames=10**9)
  stop = threading.Event()
  cluster.count_actor_stats = lambda: (stop.set(), metrics.ActorStats())[1]
  run_loop(cluster, make_config(), stop)
  assert cluster.scheduled == 4 and cluster.saved_at == [16]


def test_a_stop_before_any_update_saves_nothing_new():
  # SIGTERM during start-up: nothing was trained, so nothing is written.
  cluster = FakeCluster(max_frames=10**9)
  stop = threading.Event()
  stop.set()
  run_loop(cluster, make_config(), stop)
  assert cluster.scheduled == 0 and cluster.saved_at == []


def test_an_ended_replay_stream_is_made_again_and_training_goes_on():
  cluster = FakeCluster(max_frames=1280, streams_end={10, 30})
  run_loop(cluster, make_config())
  assert len(cluster.streams_restarted_at) == 2
  assert cluster.frames == 1280 and cluster.saved_at[-1] == cluster.updates


def test_streams_that_end_again_before_any_update_stop_the_run_as_stuck():
  # The 10th closure's stream ended, and the first after the restart too.
  cluster = FakeCluster(max_frames=10**9, streams_end={10, 11})
  with pytest.raises(errors.Stuck, match='ended again at update 36, with no '
                     'update since'):
    run_loop(cluster, make_config())
  assert cluster.streams_restarted_at == [36]


def test_a_lost_ps_in_the_loop_is_one_line_for_a_restart():
  # What a chaos run's chief printed as a traceback after `kill ps1`: the
  # coordinator's UnavailableError from an op on the lost ps.
  message = ('Graph execution error:\n\n:{"created":"@1796592657.2","description":'
             '"Error received from peer"}\n3 root error(s) found.\n'
             '  (0) UNAVAILABLE:  failed to connect to all addresses\n'
             '  (1) CANCELLED:  Function was cancelled before it was started')
  with pytest.raises(errors.Stuck) as raised:
    with chief.lost_ps_is_stuck(lambda: '/run/checkpoints/ckpt-120'):
      raise tf.errors.UnavailableError(None, None, message)
  assert str(raised.value) == (
      'a parameter server is unreachable (UnavailableError: (0) UNAVAILABLE:  '
      'failed to connect to all addresses): the chief restarts and resumes '
      'from /run/checkpoints/ckpt-120')
  with pytest.raises(tf.errors.InvalidArgumentError):  # anything else: as is
    with chief.lost_ps_is_stuck(lambda: None):
      raise tf.errors.InvalidArgumentError(None, None, 'bad shape')


LOST_PS = ('Graph execution error:\n\nDetected at node ReadVariableOp_33 defined '
           'at (most recent call last):\n<stack traces unavailable>\n'
           '2 root error(s) found.\n'
           '  (0) UNAVAILABLE:  Connection reset by peer\n'
           '  (1) UNAVAILABLE:  Connection reset by peer\n0 successful operations.')


def test_the_coordinators_error_records_are_one_line_each():
  # As TensorFlow's coordinator logs a closure that failed on a lost ps (its
  # message was ~20 lines on the console, for each closure).
  error = tf.errors.UnavailableError(None, None, LOST_PS)
  record = logging_record(
      'Remote function on worker %s failed with %r:%s\n'
      'It is treated as a transient connectivity failure for now.',
      ('/job:worker/replica:0/task:1', error, error))
  assert chief.ErrorsInOneLine().filter(record)
  assert record.getMessage() == (
      'Remote function on worker /job:worker/replica:0/task:1 failed with '
      'UnavailableError: (0) UNAVAILABLE:  Connection reset by peer It is '
      'treated as a transient connectivity failure for now.')
  plain = logging_record('frames %d updates %d', (100, 7))
  assert chief.ErrorsInOneLine().filter(plain)
  assert plain.getMessage() == 'frames 100 updates 7'  # no error: as it was


def logging_record(msg, args):
  import logging  # pylint: disable=g-import-not-at-top
  return logging.LogRecord('tensorflow', logging.ERROR, 'cluster_coordinator.py',
                           906, msg, args, None)


def test_an_error_python_cannot_raise_is_one_line_if_tensorflows(capsys, caplog):
  # TensorFlow's Executor.__del__ raised on a lost ps's failed work: Python
  # printed "Exception ignored in" and a traceback, five times.
  import sys  # pylint: disable=g-import-not-at-top

  class Executor:

    def __init__(self, error):
      self.error = error

    def __del__(self):
      raise self.error

  hook = sys.unraisablehook
  sys.unraisablehook = chief.unraisable_in_one_line
  try:
    Executor(tf.errors.UnavailableError(None, None,
                                        'failed to connect to all addresses'))
    assert capsys.readouterr().err == ''
    assert ('ignored in test_an_error_python_cannot_raise_is_one_line_if_'
            'tensorflows.<locals>.Executor.__del__: UnavailableError: failed to '
            'connect to all addresses') in caplog.text
    Executor(KeyError('not ours'))
  finally:
    sys.unraisablehook = hook
  said = capsys.readouterr().err  # Python's own hook, as it was
  assert 'Exception ignored in' in said and "KeyError: 'not ours'" in said
