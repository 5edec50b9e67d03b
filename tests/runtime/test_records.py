"""Reading the run's own progress records back (runtime/records.py)."""

from gorila_tf.runtime import records


def test_a_line_cut_short_by_a_full_disk_is_skipped_not_fatal(tmp_path):
  # What a full disk mid-write leaves: half a record, then the next record
  # appended on the same line once there is space again.
  (tmp_path / 'progress.jsonl').write_text(
      '{"step": 1, "a": 1.0}\n{"step": 2, "a"{"step": 3, "a": 3.0}\n'
      '\n{"step": 4, "a": 4.0}\n')
  assert [r['step'] for r in records.read_progress(str(tmp_path))] == [1, 4]
