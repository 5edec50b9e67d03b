"""What every command does around its own work (gorila_tf/command.py)."""

import errno

import pytest
import tensorflow as tf

from gorila_tf import command
from gorila_tf import errors
from gorila_tf import exit_codes


def raising(error):
  def main(argv):
    del argv
    raise error
  return main


@pytest.mark.parametrize('error, shown', [
    # What a chaos run met: the summary writer's first event on a full disk.
    (tf.errors.ResourceExhaustedError(
        None, None, '{{function_node __wrapped__CreateSummaryFileWriter}} '
        '/run/tb/events.out.tfevents.1; No space left on device\n\tFailed to '
        'flush 1 events'),
     '/run/tb/events.out.tfevents.1; No space left on device'),
    (OSError(errno.ENOSPC, 'No space left on device', '/run/progress.jsonl'),
     "[Errno 28] No space left on device: '/run/progress.jsonl'"),
])
def test_a_full_disk_met_anywhere_is_one_line_and_exit_2(error, shown, capsys):
  assert command.guarded(raising(error), ['cmd']) == exit_codes.BAD_INPUT
  err = capsys.readouterr().err
  assert err == (f'error: no space left on device: {shown}; stopped; free '
                 'space and run the same command again\n')


def test_another_unexpected_error_is_not_called_a_full_disk():
  with pytest.raises(tf.errors.ResourceExhaustedError):
    command.guarded(raising(tf.errors.ResourceExhaustedError(
        None, None, 'OOM when allocating tensor')), ['cmd'])


@pytest.mark.parametrize('message,prefer,limit,line', [
    ('', (), 200, ''),
    ('\n  \n', (), 200, ''),
    ('  first\nsecond', (), 200, 'first'),
    ('{{function_node __wrapped__X}} disk gone\nmore', (), 200, 'disk gone'),
    ('Graph execution error:\n\nUNAVAILABLE: failed to connect', ('UNAVAILABLE',),
     200, 'UNAVAILABLE: failed to connect'),
    ('Graph execution error:\nnothing named', ('UNAVAILABLE',), 200,
     'Graph execution error:'),
    ('x' * 500, (), 120, 'x' * 120),
])
def test_an_error_is_said_in_its_first_line(message, prefer, limit, line):
  assert errors.first_line(message, limit, prefer) == line


def test_an_error_in_one_line_is_its_type_and_its_first_line():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  lost = tf.errors.UnavailableError(None, None, 'Graph execution error:\n\n'
                                    '  (0) UNAVAILABLE:  Socket closed')
  assert errors.error_line(lost, prefer=('UNAVAILABLE',)) == (
      'UnavailableError: (0) UNAVAILABLE:  Socket closed')
  assert errors.error_line(IndexError('Read less bytes\nmore'), 9) == (
      'IndexError: Read less')
