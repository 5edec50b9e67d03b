"""gorila_tf: Gorila (Nair et al. 2015) on TensorFlow's ParameterServerStrategy.

Parts, as in the paper's figure:
  actor.py             actors acting in real games (ale-py)
  replay.py            the distributed replay memory (Reverb, one table per bundle)
  learner.py           learners: DQN gradient steps scheduled on workers
  ps.py                the parameter server: sharded variables on the ps tasks
  broadcast.py         parameter publication, chief -> actors
  bundle.py            a worker task: learner + replay + actors
  model.py             the sharded model the chief owns: variables, checkpoint, replay feed
  chief.py             the chief: the training loop (bookkeeping.py: its counters)
  evaluator.py         checkpoint evaluation with the paper's protocol
"""

__version__ = '0.1.0'
