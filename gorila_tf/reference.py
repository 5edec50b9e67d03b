"""Published Atari scores (Nature DQN, Gorila) and human-normalized results.

The table ships in the package as `data/reference/atari_reference_scores.csv`,
with its provenance in `data/reference/SOURCES.md`: 49 games, each with
random, human, DQN and Gorila scores under two evaluation protocols:

  noop          up to 30 random no-op actions at the start (Nature DQN)
  human_starts  episodes start from human-played states (Gorila paper)

Each protocol has its own random and human baselines, and a score is only
normalized with the baselines of the protocol it was measured under:
  human_normalized = (score - random) / (human - random)
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import importlib.resources
import io
import os
import statistics
from typing import Any

PROTOCOLS = ('noop', 'human_starts')
SCORES_FILE = 'atari_reference_scores.csv'

# Row keys, in order: the CSV header of `write_table`.
ROW_KEYS = ('game', 'env_id', 'protocol', 'episodes', 'frames', 'mean', 'stderr',
            'human_normalized', 'dqn', 'dqn_human_normalized', 'gorila',
            'gorila_human_normalized')


@dataclasses.dataclass(frozen=True)
class GameScores:
  """One game's published scores; `*_noop` and `*_human_starts` per protocol."""

  game: str  # title, e.g. 'Space Invaders'
  ale_id: str  # ale-py rom stem, e.g. 'SpaceInvaders'
  random_noop: float
  human_noop: float
  dqn_nature_noop: float
  gorila_noop: float
  random_human_starts: float
  human_human_starts: float
  dqn_human_starts: float
  gorila_human_starts: float

  @property
  def env_id(self) -> str:
    return f'ALE/{self.ale_id}-v5'


def _columns(protocol: str) -> dict[str, str]:
  """Field names of `protocol`'s random, human, DQN and Gorila scores."""
  if protocol not in PROTOCOLS:
    raise ValueError(f'unknown protocol {protocol!r}; allowed: '
                     f'{", ".join(PROTOCOLS)}')
  if protocol == 'noop':
    return {'random': 'random_noop', 'human': 'human_noop',
            'dqn': 'dqn_nature_noop', 'gorila': 'gorila_noop'}
  return {name: f'{name}_human_starts'
          for name in ('random', 'human', 'dqn', 'gorila')}


@functools.lru_cache(maxsize=None)
def load() -> dict[str, GameScores]:
  """The 49 games keyed by env id ('ALE/Pong-v5'), in the CSV's order.

  Cached: the same dict is returned on every call, so do not modify it.
  """
  path = (importlib.resources.files('gorila_tf') / 'data' / 'reference' /
          SCORES_FILE)
  scores = {}
  for record in csv.DictReader(io.StringIO(path.read_text())):
    numbers = {k: float(v) for k, v in record.items()
               if k not in ('game', 'ale_id')}
    game = GameScores(game=record['game'], ale_id=record['ale_id'], **numbers)
    scores[game.env_id] = game
  return scores


def for_env_id(env_id: str) -> GameScores | None:
  """The published scores of `env_id`, or None for games outside the 49."""
  return load().get(env_id)


# Published learning curves to draw beside a run's, per emulator frame:
# (label, frames, returns). Dopamine's DQN baseline on Pong (training
# returns, the mean of its runs), as quoted in this project's notes
# (../shared/ARCHITECTURE.md, "Learning: facts and anchors", 2026-12-03).
LEARNING_CURVES = {
    'Pong': ('Dopamine DQN (training returns)',
             (1e6, 2e6, 3e6, 5e6, 10e6), (-20.3, -19.1, -17.6, -15.4, -4.9)),
}


def learning_curve(env_id: str):
  """(label, frames, returns) of a published curve for the game, or None."""
  return LEARNING_CURVES.get(_game_name(env_id))


# When other DQN recipes reached a score, as their projects report it (read
# from their own files; ../shared/reference/PONG_ANCHORS.md has the sources
# and how each figure was derived). Frames are agent steps x 4; updates are
# theirs, of the batch the label names; minutes on their (GPU) hardware.
ANCHORS = {
    'Pong': (
        {'label': 'Tianshou DQN +18 (batch 64, laptop GPU)', 'score': 18.0,
         'frames': 2.7e6, 'updates': 67e3, 'minutes': 30.0},
        {'label': 'RLlib Ape-X ~20 (batch 64, V100 + 8 vCPU)', 'score': 20.0,
         'frames': 8.0e6, 'updates': 94e3, 'minutes': 50.0},
        {'label': 'CleanRL dqn_atari +18 (batch 32, GPU)', 'score': 18.0,
         'frames': 12.4e6, 'updates': 755e3, 'minutes': 90.0},
    ),
}


def anchors(env_id: str) -> tuple[dict, ...]:
  """Published (score, frames, updates, minutes) points of other recipes."""
  return ANCHORS.get(_game_name(env_id), ())


def human_normalized(score: float, random: float, human: float) -> float:
  """0 is random play, 1 is the human tester."""
  return (score - random) / (human - random)


def normalized(scores: GameScores, score: float, protocol: str) -> float:
  """`score` normalized with the random and human scores of `protocol`."""
  columns = _columns(protocol)
  return human_normalized(score, getattr(scores, columns['random']),
                          getattr(scores, columns['human']))


def _game_name(env_id: str) -> str:
  """'ALE/Pong-v5' -> 'Pong', for games without a published title."""
  return env_id.removeprefix('ALE/').removesuffix('-v5')


def table_row(env_id: str, mean: float | None, stderr: float | None,
              episodes: int | None, protocol: str = 'noop',
              frames: int | None = None) -> dict[str, Any]:
  """Our result next to the published ones of the same protocol.

  Args:
    env_id: the game, e.g. 'ALE/Pong-v5'.
    mean: our mean episodic return; None for a run that gave no result.
    stderr: standard error of that mean.
    episodes: evaluation episodes behind the mean.
    protocol: one of PROTOCOLS; picks the reference columns.
    frames: training frames behind the result.

  Returns:
    A dict with keys ROW_KEYS; references are None for games outside the 49.
  """
  columns = _columns(protocol)
  scores = for_env_id(env_id)
  row = dict.fromkeys(ROW_KEYS)
  row.update(game=scores.game if scores else _game_name(env_id), env_id=env_id,
             protocol=protocol, episodes=episodes, frames=frames, mean=mean,
             stderr=stderr)
  if scores is None:
    return row
  dqn, gorila = getattr(scores, columns['dqn']), getattr(scores, columns['gorila'])
  row.update(dqn=dqn, dqn_human_normalized=normalized(scores, dqn, protocol),
             gorila=gorila,
             gorila_human_normalized=normalized(scores, gorila, protocol))
  if mean is not None:
    row['human_normalized'] = normalized(scores, mean, protocol)
  return row


def _percent(value: float | None) -> str:
  return '—' if value is None else f'{100 * value:.1f}%'


def _number(value: float | None) -> str:
  return '—' if value is None else f'{value:.1f}'


def format_row(row: dict[str, Any]) -> str:
  """One line, e.g. 'Pong (noop): 18.3 ± 0.4 over 30 episodes — 130.0% human; ...'."""
  head = f'{row["game"]} ({row["protocol"]})'
  if row['mean'] is None:
    return f'{head}: no result'
  ours = (f'{head}: {row["mean"]:.1f} ± {_number(row["stderr"])} over '
          f'{row["episodes"]} episodes')
  if row['dqn'] is None:
    return f'{ours} — no published reference'
  return (f'{ours} — {_percent(row["human_normalized"])} human; '
          f'DQN {row["dqn"]:.1f} ({_percent(row["dqn_human_normalized"])}), '
          f'Gorila {row["gorila"]:.1f} ({_percent(row["gorila_human_normalized"])})')


def _markdown_cells(row: dict[str, Any]) -> list[str]:
  ours = '—' if row['mean'] is None else (
      f'{row["mean"]:.1f} ± {_number(row["stderr"])}')
  return [row['game'], ours, _percent(row['human_normalized']),
          _number(row['dqn']), _percent(row['dqn_human_normalized']),
          _number(row['gorila']), _percent(row['gorila_human_normalized'])]


def summary_line(rows: list[dict[str, Any]]) -> str:
  """Median human-normalized score and how many games beat DQN and Gorila."""
  scored = [r for r in rows
            if r['human_normalized'] is not None and r['dqn'] is not None]
  if not scored:
    return 'No game has both a result and a published reference yet.'
  median = statistics.median(r['human_normalized'] for r in scored)
  beat_dqn = sum(r['mean'] > r['dqn'] for r in scored)
  beat_gorila = sum(r['mean'] > r['gorila'] for r in scored)
  n = len(scored)
  return (f'Median human-normalized score: {100 * median:.1f}% over {n} games; '
          f'above DQN in {beat_dqn} of {n}, above Gorila in {beat_gorila} of {n}.')


def _markdown(rows: list[dict[str, Any]]) -> str:
  header = ['game', 'ours ± stderr', 'ours % human', 'DQN', 'DQN % human',
            'Gorila', 'Gorila % human']
  lines = ['| ' + ' | '.join(header) + ' |',
           '|' + '---|' * len(header)]
  lines += ['| ' + ' | '.join(_markdown_cells(r)) + ' |' for r in rows]
  return '\n'.join(lines) + '\n\n' + summary_line(rows) + '\n'


def _csv(rows: list[dict[str, Any]]) -> str:
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=ROW_KEYS, lineterminator='\n')
  writer.writeheader()
  writer.writerows(rows)  # None is written as an empty cell
  return out.getvalue()


def _write_atomic(path: str, text: str) -> None:
  """Readers (and a crash mid-write) never see a half-written file."""
  tmp = f'{path}.tmp-{os.getpid()}'
  with open(tmp, 'w') as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def write_table(rows: list[dict[str, Any]], csv_path: str, md_path: str) -> None:
  """Writes `rows` (from `table_row`) as CSV and as a markdown table."""
  _write_atomic(csv_path, _csv(rows))
  _write_atomic(md_path, _markdown(rows))
