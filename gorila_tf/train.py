r"""The Gorila binary: one process of a cluster, its role read from TF_CONFIG.

Every task of a run starts this same binary; TF_CONFIG (or --cluster_spec,
--task_type, --task_index) says which role it plays:

  ps         holds a share of the Q-network, target network and optimizer slots
  worker     a bundle: learner closures + Reverb replay + actors
  chief      the coordinator: schedules learners, publishes parameters,
             writes summaries and checkpoints, stops at the frame budget
  evaluator  scores checkpoints with the paper's protocol

Example (one task of a hand-made cluster):

  TF_CONFIG='{"cluster": {"chief": ["h0:2222"], "ps": ["h1:2222"],
              "worker": ["h2:2222"]}, "task": {"type": "worker", "index": 0}}' \
  python -m gorila_tf.train --config=pong --run_dir=/shared/runs/pong1

On one machine, `python -m gorila_tf.launch.local` starts a whole cluster.
"""

from __future__ import annotations

import faulthandler
import os
import signal

# Must be set before gRPC starts: calls to a dead task fail instead of hanging.
os.environ.setdefault('GRPC_FAIL_FAST', 'use_caller')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')

from absl import flags  # pylint: disable=g-import-not-at-top
from absl import logging

from gorila_tf import command
from gorila_tf import config as config_lib
from gorila_tf import errors
from gorila_tf import exit_codes
from gorila_tf.runtime import cluster as cluster_lib

FLAGS = flags.FLAGS


def define_flags():
  """Defines the command's flags, at run time: importing registers none."""
  flags.DEFINE_string('config', 'pong', 'Preset name from configs/.')
  flags.DEFINE_multi_string('set', [], 'Override, section.field=value (repeatable).')
  flags.DEFINE_string('run_dir', None, 'Run directory shared by all tasks.')
  flags.DEFINE_string('cluster_spec', None,
                      'JSON {job: [host:port, ...]}; instead of TF_CONFIG.')
  flags.DEFINE_string('task_type', None, 'ps, worker, chief or evaluator.')
  flags.DEFINE_integer('task_index', 0, 'Index of this task in its job.')


def run_task(task: cluster_lib.Task, config: config_lib.GorilaConfig,
             run_dir: str) -> None:
  """Imports TF-heavy modules only now, so bad input fails fast."""
  import reverb  # pylint: disable=g-import-not-at-top,unused-import
  # Reverb's custom ops must be registered before any server starts.
  cluster_lib.set_threads(config.run.intra_op_threads)
  if task.type == 'ps':
    from gorila_tf.runtime import ps  # pylint: disable=g-import-not-at-top
    ps.serve(task, config.run.intra_op_threads)
  elif task.type == 'worker':
    from gorila_tf.runtime import bundle  # pylint: disable=g-import-not-at-top
    bundle.run(task, config, run_dir)
  elif task.type == 'chief':
    from gorila_tf.runtime import chief  # pylint: disable=g-import-not-at-top
    chief.run(task, config, run_dir)
  elif task.type == 'evaluator':
    from gorila_tf.runtime import evaluator  # pylint: disable=g-import-not-at-top
    evaluator.run(config, run_dir)


def main(argv):
  del argv
  # `kill -USR1 <pid>` writes every thread's stack into the task's log: what
  # a task that stopped making progress is waiting on.
  faulthandler.register(signal.SIGUSR1, all_threads=True)
  task = cluster_lib.resolve_task(os.environ.get('TF_CONFIG'), FLAGS.cluster_spec,
                                  FLAGS.task_type, FLAGS.task_index)
  config = config_lib.resolve(FLAGS.config, FLAGS.set)
  from gorila_tf.agent import environments  # pylint: disable=g-import-not-at-top
  environments.check_env_id(config.env.id)
  if not FLAGS.run_dir and task.type in ('chief', 'evaluator'):
    raise errors.ConfigError('--run_dir is required for the chief and the '
                             'evaluator')
  # One line: the whole config is in <run_dir>/config.json and TensorBoard.
  logging.info('task %s:%d, config %s%s', task.type, task.index, config.name,
               f' with {" ".join(FLAGS.set)}' if FLAGS.set else '')
  run_task(task, config, FLAGS.run_dir)
  return exit_codes.OK


def cli():
  # A task ends with os._exit: TF's and Reverb's threads can abort a process
  # in its teardown after its work is done (seen on workers stopped by SIGTERM).
  command.run(define_flags, main, hard_exit=True)


if __name__ == '__main__':
  cli()
