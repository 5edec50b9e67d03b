"""TF_CONFIG and cluster-spec parsing: the task, the addresses, the errors."""

import json

import pytest

from gorila_tf import errors
from gorila_tf.runtime import cluster

CLUSTER = {'chief': ['h0:2222'], 'ps': ['h1:2222', 'h2:2222'],
           'worker': ['h3:2222', 'h4:2222']}


def tf_config(task_type, index, cluster_spec=None):
  return json.dumps({'cluster': cluster_spec or CLUSTER,
                     'task': {'type': task_type, 'index': index}})


def test_parses_a_worker_task():
  task = cluster.parse_tf_config(tf_config('worker', 1))
  assert (task.type, task.index, task.address) == ('worker', 1, 'h4:2222')
  assert task.num_ps == 2 and task.num_workers == 2


def test_reverb_addresses_are_next_to_the_tf_ports():
  task = cluster.parse_tf_config(tf_config('chief', 0))
  assert task.worker_reverb_addresses() == ['h3:2223', 'h4:2223']
  assert task.chief_reverb_address() == 'h0:2223'


def test_evaluator_is_left_out_of_the_training_cluster():
  spec = dict(CLUSTER, evaluator=['h5:2222'])
  task = cluster.parse_tf_config(tf_config('evaluator', 0, spec))
  assert 'evaluator' not in task.training_cluster
  assert set(task.training_cluster) == {'chief', 'ps', 'worker'}


def test_evaluator_needs_no_training_cluster():
  task = cluster.parse_tf_config(json.dumps({'task': {'type': 'evaluator'}}))
  assert task.type == 'evaluator'


@pytest.mark.parametrize('text, message', [
    ('{not json', 'TF_CONFIG is not valid JSON'),
    ('[]', 'TF_CONFIG must be a JSON object'),
    (json.dumps({'cluster': CLUSTER}), 'TF_CONFIG has no "task"'),
    (tf_config('learner', 0), "task type 'learner' does not exist; allowed: chief, ps, worker, evaluator"),
    (tf_config('worker', 2), r"task index 2 is out of range for job 'worker' with 2 task\(s\); allowed: 0..1"),
    (tf_config('worker', -1), 'task index -1 must be an integer >= 0'),
    (tf_config('worker', 0, {'chief': ['h0:1'], 'worker': ['h1:1']}), "cluster spec has no 'ps' job"),
    (tf_config('worker', 0, dict(CLUSTER, gpu=['h9:1'])), "cluster spec has unknown job 'gpu'"),
    (tf_config('worker', 0, dict(CLUSTER, ps=['h1'])), "cluster address 'h1' is not host:port"),
    (tf_config('worker', 0, dict(CLUSTER, ps=['h1:99999'])), "cluster address 'h1:99999'"),
    (tf_config('worker', 0, dict(CLUSTER, ps=[])), "cluster job 'ps' must be a non-empty list"),
    (tf_config('worker', 0, dict(CLUSTER, ps=['h3:2222'])), 'address h3:2222 is used by both'),
    (tf_config('chief', 0, dict(CLUSTER, chief=['a:1', 'b:1'])), 'allowed: exactly 1'),
])
def test_malformed_tf_config_is_refused_with_a_clear_message(text, message):
  with pytest.raises(errors.ConfigError, match=message) as e:
    cluster.parse_tf_config(text)
  assert '\n' not in str(e.value)


def test_flags_take_precedence_over_tf_config():
  task = cluster.resolve_task(tf_config('ps', 0), json.dumps(CLUSTER), 'worker', 1)
  assert (task.type, task.index) == ('worker', 1)


def test_missing_cluster_says_how_to_give_one():
  with pytest.raises(errors.ConfigError, match='set TF_CONFIG or pass --cluster_spec'):
    cluster.resolve_task(None, None, None, 0)


def test_cluster_spec_flag_needs_a_task_type():
  with pytest.raises(errors.ConfigError, match='must be given together'):
    cluster.resolve_task(None, json.dumps(CLUSTER), None, 0)
