"""The run directory: config, checkpoints, TensorBoard events, progress.

    <run_dir>/config.json       resolved config of the run
    <run_dir>/model_signature.json  what its checkpoints fit (game, network, ...)
    <run_dir>/checkpoints/      tf.train.CheckpointManager (chief)
    <run_dir>/tb/               TensorBoard events (chief; evaluator in tb/eval)
    <run_dir>/progress.jsonl    one JSON line per summary
    <run_dir>/logs/             one log per task (local launcher)
    <run_dir>/DONE              written when the frame budget is reached, or
                                the agent reached run.stop_at_eval_return
    <run_dir>/PLAYS.json        the evaluation that reached that return
    <run_dir>/policy/           its checkpoint's greedy policy (SavedModel)
"""

from __future__ import annotations

import json
import os
import signal
import shutil
import tempfile
import time
from typing import Any

from gorila_tf import config as config_lib
from gorila_tf import errors

CONFIG_FILE = 'config.json'
DONE_FILE = 'DONE'
SIGNATURE_FILE = 'model_signature.json'  # what the checkpoints fit
PLAYS_FILE = 'PLAYS.json'
POLICY_DIR = 'policy'


def default_run_dir(config: config_lib.GorilaConfig, base: str = 'runs') -> str:
  """CleanRL-style name: {env}__{preset}__{seed}__{time}."""
  game = config.env.id.replace('ALE/', '').replace('/', '_')
  stamp = time.strftime('%Y%m%d-%H%M%S')
  return os.path.join(base, f'{game}__{config.name}__{config.run.seed}__{stamp}')


def check_writable(run_dir: str, min_free_mb: int = 0) -> None:
  """Raises ConfigError unless run_dir can be created and written and has
  at least `min_free_mb` MiB free. Creates nothing when it raises."""
  existed = os.path.isdir(run_dir)
  try:
    os.makedirs(run_dir, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=run_dir, prefix='.write-test-') as f:
      f.write(b'x' * 4096)
      f.flush()
      os.fsync(f.fileno())
    free_mb = shutil.disk_usage(run_dir).free // (1 << 20)
  except OSError as e:
    _remove_if_created(run_dir, existed)
    raise errors.ConfigError(
        f'run directory {run_dir!r} is not writable: {e.strerror}') from None
  if free_mb < min_free_mb:
    _remove_if_created(run_dir, existed)
    raise errors.ConfigError(
        f'run directory {run_dir!r} has {free_mb} MiB free; at least '
        f'{min_free_mb} MiB is needed (run.min_free_disk_mb)')


def _remove_if_created(run_dir: str, existed: bool) -> None:
  if not existed and os.path.isdir(run_dir) and not os.listdir(run_dir):
    os.rmdir(run_dir)


def write_json_atomic(path: str, data: dict) -> None:
  """Writes JSON so that readers never see a half-written file."""
  tmp = f'{path}.tmp-{os.getpid()}'
  with open(tmp, 'w') as f:
    json.dump(data, f, indent=2, sort_keys=True)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def read_config(run_dir: str) -> config_lib.GorilaConfig | None:
  """The run's config.json (None if there is none); ConfigError if it cannot
  be read (cut short, edited by hand)."""
  path = os.path.join(run_dir, CONFIG_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    try:
      data = json.load(f)
    except json.JSONDecodeError as e:
      raise errors.ConfigError(
          f'{path} is not valid JSON ({e.msg} at line {e.lineno}): cut short '
          'or edited by hand; restore it, or move it away and give '
          '--config=<the run\'s preset>') from None
  return config_lib.from_dict(data)


def prepare(run_dir: str, config: config_lib.GorilaConfig,
            min_free_mb: int = 0) -> None:
  """Creates the run dir and records the config (chief only)."""
  check_writable(run_dir, min_free_mb)
  write_json_atomic(os.path.join(run_dir, CONFIG_FILE), config_lib.to_dict(config))
  done = os.path.join(run_dir, DONE_FILE)
  if os.path.exists(done):
    os.remove(done)


def mark_done(run_dir: str) -> None:
  with open(os.path.join(run_dir, DONE_FILE), 'w') as f:
    f.write(time.strftime('%Y-%m-%dT%H:%M:%S\n'))


def is_done(run_dir: str) -> bool:
  return os.path.exists(os.path.join(run_dir, DONE_FILE))


def mark_plays(run_dir: str, row: dict) -> None:
  """Records the evaluation row that reached run.stop_at_eval_return (the
  evaluator writes it once the policy is exported; the chief stops on it)."""
  write_json_atomic(os.path.join(run_dir, PLAYS_FILE), row)


def read_plays(run_dir: str) -> dict | None:
  """The evaluation row that reached the target return, if one did."""
  try:
    with open(os.path.join(run_dir, PLAYS_FILE)) as f:
      return json.load(f)
  except (FileNotFoundError, json.JSONDecodeError):
    return None


def plays_at(run_dir: str, target: float | None) -> dict | None:
  """The recorded row if it reached `target` (a resume with a higher
  target trains on); None when there is no target or no such row."""
  row = read_plays(run_dir)
  if target is None or row is None or row.get('mean', float('-inf')) < target:
    return None
  return row


# The launcher's word to the evaluator that training stopped short of its
# budget (--max_wall_s): score the newest checkpoint, then exit. (SIGUSR1
# is taken: every task writes its threads' stacks on it.)
FINAL_EVALUATION_SIGNAL = signal.SIGUSR2


def resolve_checkpoint(run_dir: str | None, checkpoint: str | None,
                       preset: str | None, overrides) -> tuple[str, config_lib.GorilaConfig]:
  """The checkpoint to read and the config it was trained with.

  The newest checkpoint of `run_dir`, or `checkpoint` itself; the config from
  the run directory's config.json (or `preset` when there is none), with
  `overrides` on top. Raises ConfigError naming what is missing.
  """
  if not run_dir and not checkpoint:
    raise errors.ConfigError('give --run_dir or --checkpoint')
  if checkpoint is None:
    checkpoints = os.path.join(run_dir, 'checkpoints')
    if os.path.exists(os.path.join(checkpoints, 'checkpoint')):
      # (Without TensorFlow's state file there is none: refused at once.)
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      checkpoint = tf.train.latest_checkpoint(checkpoints)
    if checkpoint is None:
      raise errors.ConfigError(f'no checkpoint in {run_dir}/checkpoints')
  elif not os.path.exists(checkpoint + '.index'):
    raise errors.ConfigError(f'--checkpoint={checkpoint!r} does not exist '
                             '(expected the ckpt-N prefix of a .index file)')
  if run_dir is None:  # runs/x/checkpoints/ckpt-N -> runs/x
    run_dir = os.path.dirname(os.path.dirname(os.path.abspath(checkpoint)))
  config = read_config(run_dir)
  if config is None:
    if not preset:
      raise errors.ConfigError(f'{run_dir} has no config.json; pass --config')
    config = config_lib.load_preset(preset)
  return checkpoint, config_lib.validate(config_lib.apply_overrides(config, overrides))


# --- What the checkpoints fit (read by the launcher before any task starts) ---


def model_signature(config: config_lib.GorilaConfig, info, num_ps: int
                    ) -> dict[str, Any]:
  """What must not change between a checkpoint and the run restoring it.

  `info`: the game's environments.EnvInfo (its actions and observations).
  """
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
    raise errors.ConfigError(
        f'the checkpoints in {run_dir} belong to another model ('
        + '; '.join(differences) + '); use a new --run_dir or the old settings')


def record_signature(run_dir: str, signature: dict[str, Any]) -> None:
  write_json_atomic(os.path.join(run_dir, SIGNATURE_FILE), signature)
