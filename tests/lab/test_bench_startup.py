"""The start-up bench: its milestones on planted lines, and one real launch."""

import pytest

from gorila_tf.lab import bench_startup

LINES = [
    (0.2, '[launcher] started ps0 (pid 1)'),
    (0.3, '[launcher] started chief (pid 5)'),
    (1.5, '[ps0] I1206 06:27:55.185534 1 train.py:88] task ps:0, config cartpole'),
    (6.0, '[ps0] I1206 06:28:02.266239 1 ps.py:28] ps 0 serving at 127.0.0.1:1'),
    (6.5, '[ps1] I1206 06:28:02.346372 1 ps.py:28] ps 1 serving at 127.0.0.1:2'),
    (7.0, '[worker0] I1206 1 bundle.py:127] bundle 0: learner at 127.0.0.1:3, replay on port 4'),
    (7.1, '[worker1] I1206 1 bundle.py:127] bundle 1: learner at 127.0.0.1:5, replay on port 6'),
    (8.0, '[chief] I1206 1 ps.py:54] connected to 2 ps and 2 workers'),
    (11.0, '[chief] I1206 1 chief.py:177] initialised a new run in /x'),
    (12.0, '[chief] I1206 1 chief.py:371] frames 500 updates 0 return - loss'),
    (13.0, '[chief] I1206 1 chief.py:371] frames 900 updates 12 return - loss'),
]


def test_each_milestone_is_the_line_of_the_last_task_to_reach_it():
  seconds = bench_startup.milestone_seconds(LINES, {'ps': 2, 'worker': 2})
  assert seconds == {'tasks started': 0.3, 'ps serving': 6.5,
                     'bundles up': 7.1, 'chief connected': 8.0,
                     'model ready': 11.0, 'first update': 13.0}
  # A summary before any update is not the first update; a missing ps is
  # not "ps serving".
  assert 'first update' not in bench_startup.milestone_seconds(LINES[:-1], {'ps': 2, 'worker': 2})
  assert 'ps serving' not in bench_startup.milestone_seconds(LINES, {'ps': 3, 'worker': 2})


@pytest.mark.e2e
def test_a_real_launch_reaches_every_milestone_in_order():
  result = bench_startup.measure('cartpole', [], launches=1)
  seconds = result['launches'][0]['seconds']
  assert set(seconds) == {name for name, _, _ in bench_startup.MILESTONES}, seconds
  # Tasks log from their own processes, so only the chief's own lines and
  # the launcher's are ordered for sure.
  assert seconds['tasks started'] == min(seconds.values())
  assert seconds['chief connected'] <= seconds['model ready'] < seconds['first update']
  assert seconds['first update'] == max(seconds.values())
  assert result['median_console_lines'] > 0
  assert '| first update |' in bench_startup.table(result)
