"""The launcher's progress line, against hand-worked records."""

import io
import json
import threading

import pytest

from gorila_tf.launch import progress


RECORD = {'step': 50_000, 'charts/frames': 50_000.0,
          'charts/frames_per_second': 250.0, 'learners/updates': 3125.0,
          'learners/updates_per_second': 15.62, 'charts/episodic_return': -19.25}


def test_line_has_counts_speeds_returns_and_eta():
  line = progress.format_line(RECORD, {'eval/episodic_return': -20.5,
                                       'step': 40_000},
                              max_frames=200_000, elapsed_s=3725)
  # 150,000 frames to go at 250 frames/s: 600 s. The evaluation says the
  # frames of its checkpoint (it stays on the line until the next one).
  assert line == ('frames 50,000/200,000 (25%) | updates 3,125 | 250 fps | '
                  '15.6 ups | return -19.2 | eval -20.5 @40k | elapsed 1:02:05 | '
                  'ETA 0:10:00')
  later = progress.format_line(RECORD, {'eval/episodic_return': 18.25,
                                        'step': 2_712_000}, 200_000, 0)
  assert '| eval 18.2 @2.71M |' in later


def test_eta_uses_the_average_rate_when_there_is_one():
  line = progress.format_line(RECORD, None, max_frames=200_000, elapsed_s=0,
                              average_fps=500.0)
  assert line.endswith('ETA 0:05:00')  # 150,000 frames at 500 frames/s


def _reporter(run_dir, out):
  return progress.ProgressReporter(progress.make_console('lines', out),
                                   str(run_dir), 200_000, 1.0,
                                   threading.Event())


def _append(path, **fields):
  with open(path, 'a') as f:
    f.write(json.dumps(dict(RECORD, **fields)) + '\n')


def test_reporter_averages_frames_per_second_over_what_it_saw(tmp_path):
  path = tmp_path / 'progress.jsonl'
  out = io.StringIO()
  reporter = _reporter(tmp_path, out)
  _append(path, time=1000.0)
  reporter.report_once()  # one record: the latest window's 250 frames/s
  # 100 s later, 50,000 frames more: 500 frames/s
  _append(path, time=1100.0, **{'charts/frames': 100_000.0})
  reporter.report_once()
  first, second = out.getvalue().splitlines()
  assert first.endswith('ETA 0:10:00') and second.endswith('ETA 0:03:20')


def test_a_resumed_runs_average_starts_after_its_earlier_records(tmp_path):
  path = tmp_path / 'progress.jsonl'
  _append(path, time=1000.0)  # the earlier launch's last record
  out = io.StringIO()
  reporter = _reporter(tmp_path, out)
  reporter.report_once()
  # Resumed two hours later: 10,000 frames since the old record would be
  # 1.4 frames/s over the gap; from its own first record the launch makes
  # 500 frames/s.
  _append(path, time=8200.0, **{'charts/frames': 60_000.0})
  reporter.report_once()
  _append(path, time=8220.0, **{'charts/frames': 70_000.0})
  reporter.report_once()
  old, _, resumed = out.getvalue().splitlines()
  assert old.endswith('ETA 0:10:00')  # the record's own 250 frames/s
  assert resumed.endswith('ETA 0:04:20')  # 130,000 frames at 500 frames/s


def test_missing_values_show_as_dashes():
  record = dict(RECORD, **{'charts/episodic_return': float('nan'),
                           'charts/frames_per_second': 0.0})
  line = progress.format_line(record, None, max_frames=200_000, elapsed_s=0)
  assert 'return - |' in line and 'eval - |' in line and line.endswith('ETA -')


def test_tail_reads_only_whole_new_lines(tmp_path):
  path = tmp_path / 'progress.jsonl'
  tail = progress.JsonlTail(str(path))
  assert not tail.poll() and tail.last is None  # no file yet
  path.write_text(json.dumps({'step': 1}) + '\n' + '{"step": ')
  assert tail.poll() and tail.last == {'step': 1}
  with open(path, 'a') as f:
    f.write('2}\n')
  assert tail.poll() and tail.last == {'step': 2}
  assert not tail.poll()


def test_plain_mode_prints_progress_lines_between_logs():
  out = io.StringIO()
  console = progress.make_console('auto', out)  # a StringIO is no terminal
  assert not console.live
  console.log('[chief] hello')
  console.status('frames 1')
  assert out.getvalue() == '[chief] hello\n[progress] frames 1\n'


def test_live_mode_keeps_the_line_at_the_bottom():
  out = io.StringIO()
  console = progress.make_console('live', out)
  console.status('frames 1')
  console.log('[chief] hello')
  console.status('frames 2')
  console.close()
  assert out.getvalue() == ('\r\x1b[Kframes 1'
                            '\r\x1b[K[chief] hello\nframes 1'
                            '\r\x1b[Kframes 2\n')


def test_unknown_mode_is_refused():
  with pytest.raises(ValueError, match="'loud' is not one of auto, live"):
    progress.make_console('loud', io.StringIO())


def test_reporter_prints_a_line_only_for_new_records(tmp_path):
  (tmp_path / 'progress.jsonl').write_text(json.dumps(RECORD) + '\n')
  out = io.StringIO()
  reporter = progress.ProgressReporter(progress.make_console('lines', out),
                                       str(tmp_path), 200_000, 1.0,
                                       threading.Event())
  reporter.report_once()
  reporter.report_once()
  assert out.getvalue().count('[progress] frames 50,000/200,000') == 1
