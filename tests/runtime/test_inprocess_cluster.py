"""A real in-process cluster: sharded ps variables, scheduled learner steps.

The cluster lives in a child process (tests/runtime/cluster_harness.py) so that its
global TF context does not leak into other tests.
"""

import json
import os
import subprocess
import sys

import pytest

HARNESS = os.path.join(os.path.dirname(__file__), 'cluster_harness.py')


@pytest.fixture(scope='module')
def result():
  proc = subprocess.run([sys.executable, HARNESS], capture_output=True,
                        text=True, timeout=300)
  lines = [l for l in proc.stdout.splitlines() if l.startswith('RESULT ')]
  assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
  return json.loads(lines[-1][len('RESULT '):])


def test_variables_are_sharded_over_both_ps_tasks(result):
  assert result['devices'] == ['/job:ps/replica:0/task:0/device:CPU:0',
                               '/job:ps/replica:0/task:1/device:CPU:0']
  # The 64x64 kernel (16 KiB > 8 KiB min shard) is split in two parts.
  assert result['num_parts'] == result['num_whole'] + 1


def test_optimizer_updates_run_on_the_ps_tasks_that_hold_the_variables(result):
  # Placed on the learner, each update would pull and push both slots.
  assert result['update_op_devices'] == result['devices']


def test_each_worker_samples_its_own_bundle_in_local_replay(result):
  # Bundle b's table holds only reward b + 1.
  assert {tuple(p) for p in result['probes']} == {(0, 1.0), (1, 2.0)}


def test_global_replay_batches_mix_every_bundle(result):
  # Rewards 1 and 2 from the two bundles: a mixed batch's mean lies between.
  assert any(1.0 < r < 2.0 for r in result['global_batch_rewards'])


def test_prioritized_learner_writes_priorities_back_to_both_tables(result):
  assert all(changed > 0 for changed in result['priorities_changed'])


def test_scheduled_train_steps_update_the_ps_variables_and_learn(result):
  applied, stale, outlier = result['counted']
  assert applied + stale + outlier == 60 * 4  # closures x steps per closure
  assert result['updates'] == applied
  assert result['returned_counts'] == result['counted']
  assert sum(result['updates_by_worker']) == applied
  assert sum(result['loss_stats_count']) == 60 * 4  # every loss is counted
  # Terminal transitions whose states tell the reward (1 or 2): Q fits them.
  assert result['last_loss'] < min(0.25 * result['first_loss'], 0.02)
  assert 1.2 < result['last_mean_q'] < 1.8  # the two bundles' mean, 1.5


def test_target_refresh_copies_the_online_network(result):
  assert result['target_equals_online']


def test_actors_receive_the_joined_shards_with_their_version(result):
  assert result['subscriber_matches']
  assert result['published'] == [result['updates'], 42]


def test_sharded_checkpoint_restores_into_a_plain_network(result):
  assert result['restored_matches']
