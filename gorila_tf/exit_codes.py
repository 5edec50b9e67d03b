"""Exit statuses of every gorila_tf command and of the local launcher
(errors.py ties each of the package's errors to one).

One table, so that the binary, the launcher's restart decisions, the tools and
the README say the same thing:

    OK           0    done
    FAILED       1    a task failed for good (launcher); a game failed (suite)
    BAD_INPUT    2    refused input or environment: a restart would not help
    WALL         3    the launcher's --max_wall_s was reached
    NUMERICAL    4    NaN/inf: stopped, the last good checkpoint kept
    COLLAPSED    5    the Q-network collapsed (health.stop_on_collapse): stopped
    INTERRUPTED  130  Ctrl-C or SIGTERM (128 + SIGINT, as shells report it)
"""

OK = 0
FAILED = 1
BAD_INPUT = 2
WALL = 3
NUMERICAL = 4
COLLAPSED = 5
INTERRUPTED = 130

# A task that exits with one of these is not restarted: it would fail again.
FINAL = (BAD_INPUT, NUMERICAL, COLLAPSED)

