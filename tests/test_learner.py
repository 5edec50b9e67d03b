"""The learner's records: step outcomes by name, state built by keyword."""

import pytest
import tensorflow as tf

from gorila_tf import learner as learner_lib


def test_a_rounds_outcome_is_the_sum_of_its_steps_by_name():
  steps = [learner_lib.StepOutcome.counted(applied=True, stale=False,
                                           outlier=False, nonfinite=False),
           learner_lib.StepOutcome.counted(applied=False, stale=True,
                                           outlier=False, nonfinite=False),
           learner_lib.StepOutcome.counted(applied=True, stale=False,
                                           outlier=False, nonfinite=False)]
  total = learner_lib.StepOutcome.zeros()
  for outcome in steps:
    total = total.plus(outcome)
  assert {k: int(v) for k, v in total._asdict().items()} == {
      'applied': 2, 'stale': 1, 'outlier': 0, 'nonfinite': 0}
  assert total.applied.dtype == tf.int64


def test_learner_state_is_built_by_keyword_and_checkpoints_every_field():
  state = learner_lib.LearnerState.create(num_workers=3)
  assert state.loss_stats.shape == (3, 3)
  assert state.updates_by_worker.shape == (3,)
  assert set(state.checkpoint_items()) == {
      'applied', 'discarded_stale', 'discarded_outlier', 'loss_stats',
      'updates_by_worker', 'nonfinite'}
  with pytest.raises(TypeError):
    learner_lib.LearnerState(*state.checkpoint_items().values())  # pylint: disable=missing-kwoa
