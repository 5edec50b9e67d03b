"""The run's own errors, each tied to the exit status it ends a command with.

    ConfigError        2  bad input: a value, preset, flag, cluster spec, port,
                          run directory (a restart would not help)
    LeaseHeld          2  the run directory belongs to another live chief
    CheckpointNotWritten 2  the run directory cannot take a checkpoint
                          (read-only, gone); the last good one is kept
    CheckpointUnreadable 2  a checkpoint asked for cannot be read (cut short,
                          garbled): the evaluator skips it, a tool refuses it
    DiskFull           2  the run directory's disk is full: stopped, nothing
                          lost; the same command resumes once there is space
    NumericalError     4  NaN/inf in a loss, gradient or parameter
    Collapsed          5  the Q-network collapsed (health.stop_on_collapse)
    Stuck              1  a task that cannot go on as it is, but would after a
                          restart (the launcher or cluster manager restarts it)

Each message is one line; the commands print it as `error: <message>` (Stuck:
logged) and exit with `exit_status`. The numbers are in exit_codes.py.
"""

import re

from gorila_tf import exit_codes


class GorilaError(Exception):
  """A failure this package names; `exit_status` is what it exits with."""

  exit_status = exit_codes.FAILED


class ConfigError(GorilaError, ValueError):
  """A preset, override or value that is not allowed (one-line message)."""

  exit_status = exit_codes.BAD_INPUT


class LeaseHeld(GorilaError):
  """The run directory belongs to another live chief (one line naming it)."""

  exit_status = exit_codes.BAD_INPUT


class CheckpointNotWritten(GorilaError):
  """A checkpoint could not be written; the last good one is kept."""

  exit_status = exit_codes.BAD_INPUT


class CheckpointUnreadable(GorilaError, ValueError):
  """A checkpoint cannot be read (cut short or garbled). A ValueError too, so
  that checkpointing.UNREADABLE covers it."""

  exit_status = exit_codes.BAD_INPUT


class DiskFull(GorilaError):
  """The run directory's disk is full: training stops, nothing is lost, and
  the same command resumes once there is space (the message says how much)."""

  exit_status = exit_codes.BAD_INPUT


NO_SPACE_ERRNOS = (28, 122)  # ENOSPC, EDQUOT (Linux)
NO_SPACE_TEXTS = ('No space left on device', 'Disk quota exceeded')


def is_no_space(error: BaseException) -> bool:
  """Whether `error` (an OSError, or one whose message quotes one) is a full
  disk or an exhausted quota."""
  if isinstance(error, OSError) and error.errno in NO_SPACE_ERRNOS:
    return True
  return any(text in str(error) for text in NO_SPACE_TEXTS)


def first_line(message: object, limit: int = 200,
               prefer: tuple[str, ...] = ()) -> str:
  """What an error says, in one line: the first non-blank line of `message`
  (or of the first line naming one of `prefer`), TensorFlow's
  `{{function_node ...}}` prefix left out, cut to `limit` characters."""
  lines = [l.strip() for l in str(message).splitlines() if l.strip()]
  said = [l for l in lines if any(p in l for p in prefer)]
  line = (said or lines or [''])[0]
  return re.sub(r'^\{\{[^}]*\}\}\s*', '', line)[:limit]


def error_line(error: BaseException, limit: int = 200,
               prefer: tuple[str, ...] = ()) -> str:
  """An error in one line: its type and `first_line` of its message
  (TensorFlow's errors: their `message`, without the op's stack)."""
  said = first_line(getattr(error, 'message', error), limit, prefer)
  return f'{type(error).__name__}: {said}'


def no_space_line(error: BaseException) -> str:
  """One line for a full disk that `error` met: what it was writing (the
  first line of its message) and what to do."""
  first = first_line(error, limit=300)
  return (f'no space left on device: {first}; stopped; free space and run '
          'the same command again')


class NumericalError(GorilaError, RuntimeError):
  """A NaN or infinite loss, gradient or parameter: the run stops."""

  exit_status = exit_codes.NUMERICAL


class Collapsed(GorilaError):
  """The Q-network collapsed (agent/health.py) and the run was told to stop
  on that: it never recovers, so a restart would not help."""

  exit_status = exit_codes.COLLAPSED


class Stuck(GorilaError):
  """A task that cannot go on as it is but would after a restart: the binary
  logs it in one line (no traceback) and exits FAILED, which the launcher or
  the cluster manager answers with a restart."""

  exit_status = exit_codes.FAILED
