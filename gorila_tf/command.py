"""What every gorila_tf command does around its own work.

    def main(argv) -> int: ...                 # raise errors.* for bad input
    def cli(): command.run(define_flags, main)

`run` defines the command's flags when it runs (importing registers none, so
several commands can share a process), refuses a bad flag and stray
arguments, and turns an error of this package into one line,
`error: <what>`, and its exit status (errors.py); a task that is `Stuck` is
logged instead, for a restart; a full disk met anywhere is one line, exit 2.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

from absl import app
from absl import flags
from absl import logging

from gorila_tf import errors
from gorila_tf import exit_codes


def guarded(main: Callable[[list[str]], int | None], argv: list[str]) -> int:
  """`main(argv)`'s exit status, the package's errors turned into theirs."""
  if len(argv) > 1:
    print(f'error: unexpected arguments: {" ".join(argv[1:])}; flags are '
          '--name=value (--helpshort lists them)', file=sys.stderr, flush=True)
    return exit_codes.BAD_INPUT
  try:
    status = main(argv)
  except KeyboardInterrupt:  # Ctrl-C, or SIGTERM before a task's own handler
    logging.info('interrupted: stopped')
    return exit_codes.INTERRUPTED
  except errors.Stuck as e:  # a restart helps: logged, not an error line
    logging.error('%s', e)
    return e.exit_status
  except errors.GorilaError as e:
    print(f'error: {e}', file=sys.stderr, flush=True)
    return e.exit_status
  except Exception as e:  # pylint: disable=broad-except
    # A full disk met where no part of this package expected one (a chaos
    # run found the summary writer's first event): still one line and exit
    # 2, which stops the run (a restart would meet the same disk).
    if not errors.is_no_space(e):
      raise
    print(f'error: {errors.no_space_line(e)}', file=sys.stderr, flush=True)
    return exit_codes.BAD_INPUT
  return exit_codes.OK if status is None else status


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a bad flag refused as every bad input is: one
  line, `error: <what>`, and exit status 2 (absl's own says FATAL, adds a
  usage hint and exits 1)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    print(f'error: {e} (--helpshort lists the flags)', file=sys.stderr, flush=True)
    sys.exit(exit_codes.BAD_INPUT)


def run(define_flags: Callable[[], None],
        main: Callable[[list[str]], int | None],
        hard_exit: bool = False) -> None:
  """A command's console entry point.

  `hard_exit`: leave with os._exit once main is done and the output is
  flushed, skipping the interpreter's teardown, where TensorFlow's and
  Reverb's C++ threads can abort the process ("terminate called without an
  active exception") after it finished its work.
  """
  define_flags()
  if not hard_exit:
    app.run(lambda argv: guarded(main, argv), flags_parser=parse_flags)
    return

  def main_then_exit(argv):
    status = guarded(main, argv)
    logging.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # pylint: disable=protected-access

  app.run(main_then_exit, flags_parser=parse_flags)
