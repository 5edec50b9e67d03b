"""The bad-input sweep: its judgement on planted outcomes, and real cases."""

import pytest

from gorila_tf import exit_codes
from gorila_tf.lab import bench_bad_input as sweep

REFUSED = sweep.Case('x', sweep.LAUNCH, names="'pongg'")
HANDLED = sweep.Case('y', sweep.LAUNCH, expect='handled', says='resumed from')
ONE_LINE = "error: unknown config preset 'pongg'"
KEPT = {'checkpoints/ckpt-2.index': 'a', 'config.json': 'b'}


def test_a_refusal_as_it_must_be_passes():
  assert sweep.judge(REFUSED, exit_codes.BAD_INPUT, '', ONE_LINE, KEPT, KEPT) == []


def test_each_way_a_refusal_can_go_wrong_is_named():
  assert sweep.judge(REFUSED, 1, '', ONE_LINE, {}, {}) == ['exit 1, not 2']
  assert sweep.judge(REFUSED, 2, '', f'{ONE_LINE}\n{ONE_LINE}', {}, {}) == [
      '2 error lines, not 1']
  assert sweep.judge(REFUSED, 2, '', 'Traceback', {}, {}) == ['0 error lines, not 1']
  assert sweep.judge(REFUSED, 2, '', 'error: bad preset', {}, {}) == [
      "the error line does not name \"'pongg'\""]
  wrong = sweep.judge(REFUSED, 2, '', ONE_LINE, KEPT, {**KEPT, 'config.json': 'c'})
  assert wrong == ['the run directory changed: config.json and 1 more']


def test_a_handling_must_say_so_exit_as_told_and_lose_no_checkpoint():
  assert sweep.judge(HANDLED, 0, 'resumed from ckpt-1', '', KEPT, KEPT) == []
  assert sweep.judge(HANDLED, 0, 'initialised a new run', '', KEPT, KEPT) == [
      "no 'resumed from' in its output"]
  assert sweep.judge(HANDLED, 0, 'resumed from ckpt-1', '', KEPT,
                     {'config.json': 'b'}) == [
                         "checkpoints lost: ['checkpoints/ckpt-2.index']"]
  assert sweep.judge(HANDLED, 1, 'resumed from', '', {}, {}) == ['exit 1, not 0']


def test_every_case_says_what_it_must_get():
  cases = sweep.cases()
  assert len({c.name for c in cases}) == len(cases) >= 40
  for case in cases:
    assert case.expect in ('refused', 'handled'), case.name
    assert case.names if case.expect == 'refused' else case.says, case.name
    assert case.damage is None or case.trained, case.name


def test_real_cases_are_run_and_judged():
  # Two cases for real (the launcher, no trained run needed): each its
  # record, with the one line it printed.
  result = sweep.measure(only=['unknown preset', 'infinite learning rate'])
  assert result['tried'] == 2 and result['wrong'] == 0, sweep.table(result)
  lines = {r['name']: r['error_lines'] for r in result['cases']}
  assert lines['unknown preset'][0].startswith("error: unknown config preset 'pongg'")
  table = sweep.table(result)
  assert '| unknown preset | refused | 2 |' in table


def test_checkpoints_rotated_out_are_not_lost_newer_ones_gone_are():
  before = {'checkpoints/ckpt-0.index': 'a', 'checkpoints/ckpt-232.index': 'b',
            'checkpoints/ckpt-504.index': 'c'}
  rotated = {'checkpoints/ckpt-232.index': 'b', 'checkpoints/ckpt-504.index': 'c',
             'checkpoints/ckpt-700.index': 'd'}
  assert sweep.lost_checkpoints(before, rotated) == []
  gone = {'checkpoints/ckpt-0.index': 'a', 'checkpoints/ckpt-700.index': 'd'}
  assert sweep.lost_checkpoints(before, gone) == [
      'checkpoints/ckpt-232.index', 'checkpoints/ckpt-504.index']


def test_every_case_can_be_named_on_the_command_line():
  # --bad_input_cases is a comma-separated list.
  assert not [c.name for c in sweep.cases() if ',' in c.name]


@pytest.mark.e2e
def test_damaged_run_directories_are_refused_for_real():
  # One short CartPole run trained for real, copied per case: a resume with
  # another network (refused once by the launcher, before any task starts)
  # and a run whose every checkpoint is garbled (refused by the chief
  # before it writes anything), each with the run directory as it was.
  names = ['resume with another network', 'every checkpoint garbled']
  result = sweep.measure(only=names)
  assert result['tried'] == 2 and result['wrong'] == 0, sweep.table(result)
  lines = {r['name']: r['error_lines'] for r in result['cases']}
  assert lines['resume with another network'][0].startswith(
      'error: the checkpoints in ')  # the launcher's own line, not a task's
  assert lines['every checkpoint garbled'][0].startswith(
      '[chief] error: none of the checkpoints in ')
