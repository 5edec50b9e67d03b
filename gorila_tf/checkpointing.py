"""Checkpoints that survive crashes, refuse mismatches and skip corruption.

* Model checkpoints: `tf.train.CheckpointManager` writes the new files first
  and names them in the `checkpoint` index file last (an atomic rename), so a
  crash during a save leaves the previous checkpoint as the latest. The last
  `run.keep_checkpoints` are kept.
* Reading: the newest checkpoint that restores cleanly is used; a corrupt or
  truncated newer one is reported and skipped.
* Compatibility: `model_signature.json` in the run directory records what a
  checkpoint's shapes depend on (game, actions, network, n-step, shard count);
  a run with a different one is refused with the differences named.
* Replay: each bundle's Reverb server checkpoints its table under
  `<run_dir>/replay/bundle_<i>/` when the chief checkpoints, and loads the
  newest one when it starts.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

import reverb
import tensorflow as tf
from absl import logging

from gorila_tf import config as config_lib
from gorila_tf import environments
from gorila_tf import run_dir as run_dir_lib

SIGNATURE_FILE = 'model_signature.json'
REPLAY_DIR = 'replay'


def model_signature(config: config_lib.GorilaConfig, info: environments.EnvInfo,
                    num_ps: int) -> dict[str, Any]:
  """What must not change between a checkpoint and the run restoring it."""
  return {
      'env.id': config.env.id,
      'num_actions': info.num_actions,
      'observation_shape': list(info.observation_shape),
      'network.kind': config.network.kind,
      'network.mlp_layers': list(config.network.mlp_layers),
      'network.dueling': config.network.dueling,
      'learner.n_step': config.learner.n_step,
      'learner.optimizer': config.learner.optimizer,
      'num_ps (shard count)': num_ps,
      'launch.min_shard_bytes': config.launch.min_shard_bytes,
  }


def check_compatible(run_dir: str, signature: dict[str, Any]) -> None:
  """Raises ConfigError if run_dir holds checkpoints of another model."""
  path = os.path.join(run_dir, SIGNATURE_FILE)
  if not os.path.exists(path):
    return
  with open(path) as f:
    saved = json.load(f)
  differences = [f'{key}: checkpoint {saved.get(key)!r}, this run {value!r}'
                 for key, value in signature.items() if saved.get(key) != value]
  if differences:
    raise config_lib.ConfigError(
        f'the checkpoints in {run_dir} belong to another model ('
        + '; '.join(differences) + '); use a new --run_dir or the old settings')


def record_signature(run_dir: str, signature: dict[str, Any]) -> None:
  run_dir_lib.write_json_atomic(os.path.join(run_dir, SIGNATURE_FILE), signature)


def restore_newest_readable(manager: tf.train.CheckpointManager,
                            checkpoint: tf.train.Checkpoint) -> Optional[str]:
  """Restores the newest checkpoint that reads cleanly; None if there is none.

  Raises:
    ConfigError: if checkpoints exist but none of them can be read.
  """
  candidates = list(reversed(manager.checkpoints))
  for path in candidates:
    try:
      checkpoint.restore(path).assert_existing_objects_matched()
      return path
    except (tf.errors.OpError, ValueError, AssertionError, IndexError,
            OSError, RuntimeError) as e:
      logging.warning('checkpoint %s is unreadable (%s: %s); trying the one '
                      'before it', path, type(e).__name__,
                      str(e).splitlines()[0][:200])
  if candidates:
    raise config_lib.ConfigError(
        f'none of the checkpoints in {manager.directory} can be read '
        f'({", ".join(os.path.basename(p) for p in candidates)}); move them '
        'away to start afresh')
  return None


@tf.function
def all_finite(tensors) -> tf.Tensor:
  return tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in tensors])


def replay_checkpoint_dir(run_dir: str, bundle: int) -> str:
  return os.path.join(run_dir, REPLAY_DIR, f'bundle_{bundle}')


def replay_checkpointer(run_dir: Optional[str], bundle: int):
  """The checkpointer a bundle's Reverb server loads from and saves to."""
  if not run_dir:
    return None  # no shared run directory: replay is not checkpointed
  path = replay_checkpoint_dir(run_dir, bundle)
  os.makedirs(path, exist_ok=True)
  return reverb.checkpointers.DefaultCheckpointer(path)


def checkpoint_replay(addresses: list[str]) -> int:
  """Asks every reachable bundle to checkpoint its table; returns how many did.

  Reverb keeps only the newest replay checkpoint of each server. A bundle that
  is down is skipped: its previous replay checkpoint stays.
  """
  saved = 0
  for bundle, address in enumerate(addresses):
    try:
      client = reverb.Client(address)
      client.server_info(timeout=2)
      client.checkpoint()
      saved += 1
    except (reverb.errors.ReverbError, RuntimeError, tf.errors.OpError) as e:
      logging.warning('replay of bundle %d not checkpointed: %s', bundle, e)
  return saved
