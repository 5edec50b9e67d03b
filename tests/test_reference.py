"""Published reference scores: the shipped table and the normalization."""

import csv
import dataclasses
import importlib.resources
import os

import pytest

from gorila_tf import reference
from tests.conftest import REPO

SHARED = os.path.join(REPO, '..', 'shared', 'reference')
FILES = ('atari_reference_scores.csv', 'SOURCES.md')


def test_the_table_has_49_games_with_every_cell_filled():
  games = reference.load()
  assert len(games) == 49
  for env_id, scores in games.items():
    assert env_id == scores.env_id and env_id.startswith('ALE/')
    for field in dataclasses.fields(scores):
      value = getattr(scores, field.name)
      assert value == value and value != '', (env_id, field.name)  # not NaN, not empty
  assert reference.load() is games  # cached


def test_pong_noop_scores_are_the_published_ones():
  pong = reference.for_env_id('ALE/Pong-v5')
  assert (pong.game, pong.ale_id) == ('Pong', 'Pong')
  assert (pong.random_noop, pong.human_noop) == (-20.7, 9.3)
  assert (pong.dqn_nature_noop, pong.gorila_noop) == (18.9, 18.3)
  assert (pong.random_human_starts, pong.human_human_starts) == (-18.0, 15.5)


def test_human_normalized_by_hand():
  # (5 - 1) / (9 - 1) = 0.5; random play is 0, the human tester is 1.
  assert reference.human_normalized(5.0, 1.0, 9.0) == pytest.approx(0.5)
  assert reference.human_normalized(1.0, 1.0, 9.0) == 0.0
  assert reference.human_normalized(9.0, 1.0, 9.0) == pytest.approx(1.0)


def test_pong_noop_normalization_by_hand():
  # No-op baselines: random -20.7, human 9.3, so human - random = 30.
  # Ours 18.3:   (18.3 + 20.7) / 30 = 39.0 / 30 = 1.30
  # DQN 18.9:    (18.9 + 20.7) / 30 = 39.6 / 30 = 1.32
  row = reference.table_row('ALE/Pong-v5', 18.3, 0.4, 30, 'noop', frames=10**7)
  assert row['game'] == 'Pong' and row['frames'] == 10**7
  assert row['human_normalized'] == pytest.approx(1.30)
  assert row['dqn'] == 18.9 and row['dqn_human_normalized'] == pytest.approx(1.32)
  assert row['gorila'] == 18.3
  assert row['gorila_human_normalized'] == pytest.approx(1.30)
  assert reference.format_row(row) == (
      'Pong (noop): 18.3 ± 0.4 over 30 episodes — 130.0% human; '
      'DQN 18.9 (132.0%), Gorila 18.3 (130.0%)')


def test_human_starts_use_their_own_baselines():
  # Same raw score 18.3, human-start baselines: random -18.0, human 15.5.
  #   (18.3 + 18.0) / (15.5 + 18.0) = 36.3 / 33.5 = 1.08358...
  # against 1.30 with the no-op baselines above.
  pong = reference.for_env_id('ALE/Pong-v5')
  assert reference.normalized(pong, 18.3, 'noop') == pytest.approx(1.30)
  assert reference.normalized(pong, 18.3, 'human_starts') == pytest.approx(36.3 / 33.5)
  row = reference.table_row('ALE/Pong-v5', 18.3, 0.4, 30, 'human_starts')
  # DQN and Gorila come from the human-start columns too:
  #   DQN 16.2:     (16.2 + 18.0) / 33.5 = 34.2 / 33.5   = 1.02090...
  #   Gorila 16.71: (16.71 + 18.0) / 33.5 = 34.71 / 33.5 = 1.03612...
  assert (row['dqn'], row['gorila']) == (16.2, 16.71)
  assert row['dqn_human_normalized'] == pytest.approx(34.2 / 33.5)
  assert row['gorila_human_normalized'] == pytest.approx(34.71 / 33.5)


def test_unknown_protocol_is_refused_with_the_allowed_ones():
  pong = reference.for_env_id('ALE/Pong-v5')
  with pytest.raises(ValueError, match="'sticky'.*noop, human_starts"):
    reference.normalized(pong, 1.0, 'sticky')
  with pytest.raises(ValueError, match="'sticky'"):
    reference.table_row('ALE/Pong-v5', 1.0, 0.1, 30, 'sticky')


def test_games_outside_the_49_have_no_references():
  assert reference.for_env_id('ALE/Tetris-v5') is None
  row = reference.table_row('ALE/Tetris-v5', 12.0, 1.0, 30)
  assert row['game'] == 'Tetris' and row['mean'] == 12.0
  for key in ('human_normalized', 'dqn', 'dqn_human_normalized', 'gorila',
              'gorila_human_normalized'):
    assert row[key] is None, key
  assert 'no published reference' in reference.format_row(row)


def test_write_table_csv_reads_back_and_markdown_has_the_median(tmp_path):
  # Pong 18.3 -> 1.30 (noop). Breakout: random 1.7, human 31.8, so 31.8 scores
  # (31.8 - 1.7) / 30.1 = 1.0; median of [1.30, 1.00] = 1.15 = 115.0%.
  # Beats DQN: Pong 18.3 < 18.9 no, Breakout 31.8 < 401.2 no -> 0 of 2.
  # Beats Gorila: Pong 18.3 = 18.3 no (not above), Breakout no -> 0 of 2.
  # Tetris has no reference and a failed game has no result: both left out.
  rows = [reference.table_row('ALE/Pong-v5', 18.3, 0.4, 30, frames=100),
          reference.table_row('ALE/Breakout-v5', 31.8, 2.0, 30, frames=100),
          reference.table_row('ALE/Tetris-v5', 5.0, 1.0, 30),
          reference.table_row('ALE/Alien-v5', None, None, None)]
  csv_path, md_path = str(tmp_path / 'r.csv'), str(tmp_path / 'r.md')
  reference.write_table(rows, csv_path, md_path)
  with open(csv_path) as f:
    back = list(csv.DictReader(f))
  assert [r['env_id'] for r in back] == [r['env_id'] for r in rows]
  assert list(back[0]) == list(rows[0])
  assert float(back[0]['human_normalized']) == pytest.approx(1.30)
  assert back[3]['mean'] == '' and back[2]['dqn'] == ''
  markdown = open(md_path).read()
  assert '| Pong | 18.3 ± 0.4 | 130.0% | 18.9 | 132.0% | 18.3 | 130.0% |' in markdown
  assert markdown.strip().splitlines()[-1] == (
      'Median human-normalized score: 115.0% over 2 games; '
      'above DQN in 0 of 2, above Gorila in 0 of 2.')
  assert sorted(os.listdir(tmp_path)) == ['r.csv', 'r.md']  # no tmp files left


@pytest.mark.parametrize('name', FILES)
def test_packaged_files_are_the_shared_ones_byte_for_byte(name):
  shared = os.path.join(SHARED, name)
  if not os.path.exists(shared):
    pytest.skip(f'{SHARED} is absent')
  packaged = (importlib.resources.files('gorila_tf') / 'data' / 'reference' /
              name)
  with open(shared, 'rb') as f:
    assert packaged.read_bytes() == f.read()


def test_pongs_published_curve_is_dopamines_dqn_per_frame():
  label, frames, returns = reference.learning_curve('ALE/Pong-v5')
  assert label.startswith('Dopamine DQN') and frames[0] == 1e6
  assert returns == (-20.3, -19.1, -17.6, -15.4, -4.9)
  assert reference.learning_curve('ALE/Breakout-v5') is None
