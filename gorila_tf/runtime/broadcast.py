"""Parameter broadcast: the chief publishes the online network, actors pull it.

Actors do not talk to the ps tasks: they act with a local copy of the
Q-network that this module refreshes. The two ends:

    chief, every run.publish_every_s (ParameterPublisher.publish):
      read the online network from the ps tasks, shards joined
      push (whole tensors, update count, frames) into the one-slot
        `variables` table of the chief's Reverb server
    actor, every actor.param_refresh_steps steps (ParameterSubscriber.refresh):
      if that table holds a parameter set: pull it into the local network
      else (chief starting or restarting): keep the parameters it has

Both ends are TF-Agents' `ReverbVariableContainer`; the update count that
comes with the parameters lets the chief measure how stale actors are.
"""

from __future__ import annotations

import time
from typing import Optional, Sequence

import reverb
import tensorflow as tf
from absl import logging
from tf_agents.experimental.distributed import reverb_variable_container

from gorila_tf.agent import networks
from gorila_tf.runtime import deadlines

VARIABLES_TABLE = reverb_variable_container.DEFAULT_TABLE
RETRY_AFTER_S = 5.0  # actors keep acting with their parameters meanwhile
PULL_WAIT_S = 2.0  # an actor waits this long for a pull it starts, then acts on
PULL_ABANDON_S = 30.0  # a pull unanswered this long is left behind


def params_signature(shapes: Sequence[tf.TensorShape]) -> dict:
  """What one published parameter set looks like."""
  return {
      'params': [tf.TensorSpec(s, tf.float32) for s in shapes],
      'version': tf.TensorSpec((), tf.int64),  # updates applied when read
      'frames': tf.TensorSpec((), tf.int64),  # frames seen by then
  }


def make_variables_table(shapes: Sequence[tf.TensorShape]) -> reverb.Table:
  """The one-slot table actors pull parameters from."""
  return reverb.Table(
      name=VARIABLES_TABLE,
      sampler=reverb.selectors.Uniform(),
      remover=reverb.selectors.Fifo(),
      max_size=1,
      max_times_sampled=0,
      rate_limiter=reverb.rate_limiters.MinSize(1),
      signature=params_signature(shapes))


class ParameterPublisher:
  """Chief side: reads the sharded online network and pushes whole tensors.

  The push goes through a Reverb client resource in the chief's eager
  context. When the strategy recovers from a lost worker it resets that
  context and the resource is gone: the client is then made again.
  """

  def __init__(self, address: str, online_net: networks.QNetwork):
    self._address = address
    self._container = reverb_variable_container.ReverbVariableContainer(address)
    self._net = online_net

  @tf.function
  def _read(self):
    return self._net.read()  # shards joined

  def publish(self, version: int, frames: int) -> bool:
    """Pushes the parameters; returns False if this push had to be skipped."""
    values = {'params': self._read(),
              'version': tf.constant(version, tf.int64),
              'frames': tf.constant(frames, tf.int64)}
    for attempt in range(2):
      try:
        self._container.push(values)
        return True
      except tf.errors.OpError as e:
        logging.warning('parameter push failed (%s); %s', type(e).__name__,
                        'retrying with a new client' if attempt == 0 else
                        'skipped, actors keep their parameters')
        self._container = reverb_variable_container.ReverbVariableContainer(
            self._address)
    return False


class PublicationProbe:
  """How many parameter sets the chief has published, asked with a deadline.

  `publications()` is None when the chief does not answer within `timeout_s`
  (down, restarting, cut off); it never blocks longer.
  """

  def __init__(self, address: str, timeout_s: float):
    self._table = deadlines.TableProbe(address, VARIABLES_TABLE, timeout_s)

  def publications(self) -> Optional[int]:
    info = self._table.info()
    return None if info is None else info.rate_limiter_info.insert_stats.completed


def fetch_published(address: str, container):
  """(container, the newest parameter set or None if none is published yet).

  Blocking, without a deadline of its own: run as a background call.
  """
  # Asked first, with a timeout: an unreachable chief or an empty table
  # (chief starting or restarted) would block the pull.
  info = reverb.Client(address).server_info(timeout=1)
  if info[VARIABLES_TABLE].current_size == 0:
    return container, None
  if container is None:
    container = reverb_variable_container.ReverbVariableContainer(address)
  return container, container.pull()


class ParameterSubscriber:
  """Actor side: copies the newest published parameters into a local network.

  Tolerates a chief that is not up yet or restarting: `refresh` then returns
  None and the actor keeps its current parameters. Each pull runs in a
  background call (deadlines.py): the actor waits `wait_s` for it, then acts
  on and takes the parameters at a later refresh; a pull unanswered for
  `abandon_s` (its connection went silent mid-call) is left behind and the
  next one uses a new connection.
  """

  def __init__(self, address: str, local_net: networks.QNetwork,
               wait_s: float = PULL_WAIT_S, abandon_s: float = PULL_ABANDON_S):
    self._address = address
    self._variables = local_net.params
    self._wait_s = wait_s
    self._abandon_s = abandon_s
    self._container: Optional[reverb_variable_container.ReverbVariableContainer] = None
    self._pull: Optional[deadlines.BackgroundCall] = None
    self._retry_at = 0.0  # after a failed pull, wait before asking again
    self._answered = False  # a pull has been answered since this started

  def _give_up(self, why: str, *args) -> None:
    # Before the first pull ever answered, the chief is still starting (its
    # parameter table comes up after the workers'): expected, not a warning.
    level = logging.WARNING if self._answered else logging.INFO
    logging.log_every_n_seconds(level, 'parameter pull from %s ' + why
                                + ('' if self._answered else ' (the chief is '
                                   'still starting)'), 30, self._address, *args)
    self._container = None
    self._retry_at = time.monotonic() + RETRY_AFTER_S

  def refresh(self) -> Optional[tuple[int, int]]:
    """Assigns the newest parameters if a pull has them; returns (version, frames)."""
    wait_s = 0.0  # a pull already under way: only look whether it is done
    if self._pull is None:
      if time.monotonic() < self._retry_at:
        return None
      self._pull = deadlines.BackgroundCall(fetch_published, self._address,
                                            self._container, name='parameter-pull')
      wait_s = self._wait_s
    if not self._pull.wait(wait_s):
      if self._pull.age_s() > self._abandon_s:
        self._give_up('unanswered for %.0f s: left behind, the next pull uses '
                      'a new connection', self._pull.age_s())
        self._pull = None
      return None
    pull, self._pull = self._pull, None
    if pull.expected_error() is not None:
      self._give_up('failed: %s', pull.error)
      return None
    self._container, values = pull.result
    self._answered = True
    if values is None:
      return None
    for variable, value in zip(self._variables, values['params']):
      variable.assign(value)
    return int(values['version']), int(values['frames'])
