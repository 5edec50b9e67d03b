"""gorila_tf: Gorila (Nair et al. 2015) on TensorFlow's ParameterServerStrategy.

The paper's roles, one module each:
  actor.py       actors acting in real games (ale-py)
  replay.py      the distributed replay memory (Reverb, one table per bundle)
  learner.py     learners: DQN gradient steps scheduled on workers
  optimizers.py  the update rules the ps applies (centered RMSProp, Adam)
  ps.py          the parameter server: sharded variables on the ps tasks
  broadcast.py   parameter publication, chief -> actors
  bundle.py      a worker task: learner + replay + actors
  model.py       the sharded model the chief owns: variables, checkpoint, dataset
  chief.py       the chief's training loop (bookkeeping.py: its counters)
  evaluator.py   checkpoint evaluation with the paper's protocol
  train.py       the binary: one task of a cluster, its role from TF_CONFIG

Shared pieces: config.py, exit_codes.py, cluster.py, dqn.py, networks.py,
environments.py, checkpointing.py, run_dir.py, lease.py (the chief's
ownership of its run directory), metrics.py, reference.py.
Commands and tools (evaluate, play, export, plot, suite, bench) live apart in
`gorila_tf.tools`.
"""

import os

__version__ = '0.1.0'

# TensorFlow 2.15 runs oneDNN's kernels by default only on CPUs with AVX-512
# (VNNI, BF16, AMX); on an AVX2-only CPU it runs Eigen's, and the DQN update
# is 1.5x slower (one-process, float32, batch 64: 12.8 updates/s against 19.8
# with oneDNN; docs/benchmarks.md). Read once, when TensorFlow is first
# imported: every command and task of this package imports gorila_tf before
# TensorFlow, and the launchers' tasks inherit it. TF_ENABLE_ONEDNN_OPTS=0
# in the environment keeps Eigen's.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')


def _silence_gym_notice() -> None:
  """Drops the old `gym` package's deprecation banner, and nothing else.

  tf-agents (our parameter broadcast uses its Reverb variable container)
  imports `gym`, whose __init__ prints to stderr, in every process, the
  notice that `gym_notices.notices.notices` holds for the installed gym
  version. gorila_tf uses gymnasium; emptying that one entry before gym is
  imported leaves every warning and every other notice as it was.
  """
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  try:
    from gym_notices import notices  # pylint: disable=g-import-not-at-top
    notices.notices.pop(metadata.version('gym'), None)
  except (ImportError, metadata.PackageNotFoundError):
    pass  # no old gym here: nothing to silence


_silence_gym_notice()
