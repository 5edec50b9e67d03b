"""bundle.LearnerWatch: when a bundle restarts itself because its learner stalled;
and what a stopping bundle says of actors that do not stop."""

import pytest

from gorila_tf import config as config_lib
from gorila_tf import errors
from gorila_tf.runtime import bundle
from gorila_tf.runtime.deadlines import ReplayStats


def watch():
  return bundle.LearnerWatch(stall_s=20.0, min_size=100, every_s=5.0)  # 4 checks


def full(sampled):
  return ReplayStats(size=500, inserted=1000, sampled=sampled)


def test_a_learner_idle_while_the_chief_publishes_is_stalled_after_the_window():
  w = watch()
  assert w.checks == 4
  # The first check has nothing to compare with; then 4 idle checks.
  assert [w.check(full(70), published) for published in range(10, 15)] == [
      False, False, False, False, True]
  assert 'sampled nothing for 20 s' in w.describe()


@pytest.mark.parametrize('why_not, sequence', [
    ('it samples', [(full(s), p) for s, p in zip(range(0, 60, 10), range(10, 16))]),
    ('the replay is too small to sample',
     [(ReplayStats(50, 50, 0), p) for p in range(10, 16)]),
    # a partition or a chief restoring: the chief does not answer, or answers
    # without publishing
    ('the chief does not answer', [(full(70), None)] * 6),
    ('the chief publishes nothing', [(full(70), 10)] * 6),
    ('its own replay does not answer', [(None, p) for p in range(10, 16)]),
])
def test_no_stall_when(why_not, sequence):
  w = watch()
  assert not any(w.check(stats, published) for stats, published in sequence), why_not


def test_one_answer_missing_starts_the_window_again():
  w = watch()
  checks = [(full(70), 10), (full(70), 11), (full(70), 12), (full(70), None),
            (full(70), 14), (full(70), 15), (full(70), 16), (full(70), 17)]
  assert [w.check(s, p) for s, p in checks] == [False] * 7 + [False]
  assert w.check(full(70), 18)  # 4 idle checks after the gap


def test_the_setting_is_bounded():
  with pytest.raises(errors.ConfigError, match='run.learner_stall_s'):
    config_lib.resolve('cartpole', ['run.learner_stall_s=5'])
  assert config_lib.resolve('cartpole', ['run.learner_stall_s=0']).run.learner_stall_s == 0


def test_a_stuck_actor_thread_is_said_where_it_waits():
  # What a bundle logs when its actors do not stop within ACTORS_STOP_S.
  import threading  # pylint: disable=g-import-not-at-top
  assert bundle.ACTORS_STOP_S < 10  # inside the launcher's grace
  release = threading.Event()

  def blocked_in_a_call():
    release.wait()

  thread = threading.Thread(target=blocked_in_a_call, daemon=True)
  thread.start()
  where = bundle.where(thread)
  assert where.startswith('threading.py:') and 'wait' in where
  assert 'test_learner_watch.py:' in where and 'blocked_in_a_call' in where
  release.set()
  thread.join()
  assert bundle.where(thread) == 'gone'
