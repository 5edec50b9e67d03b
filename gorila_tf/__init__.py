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

__version__ = '0.1.0'
