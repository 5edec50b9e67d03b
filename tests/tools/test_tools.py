"""The watch/export/plot commands on a tiny real checkpoint."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from gorila_tf import config as config_lib
from gorila_tf.agent import environments
from gorila_tf.agent import networks
from gorila_tf.runtime import run_dir as run_dir_lib
from tests.conftest import run_module


@pytest.fixture(scope='module')
def cartpole_run(tmp_path_factory):
  """A run dir with config.json, one checkpoint, progress and evaluations."""
  run_dir = str(tmp_path_factory.mktemp('runs') / 'cartpole')
  config = config_lib.resolve('cartpole')
  run_dir_lib.prepare(run_dir, config)
  info = environments.env_info(config.env)
  q_net = networks.make_q_network(config.network, info, seed=3)
  checkpoint = tf.train.Checkpoint(q_network=q_net,
                                   frames=tf.Variable(1234, dtype=tf.int64))
  tf.train.CheckpointManager(checkpoint, os.path.join(run_dir, 'checkpoints'),
                             max_to_keep=1).save(checkpoint_number=77)
  with open(os.path.join(run_dir, 'progress.jsonl'), 'w') as f:
    for i in range(5):
      f.write(json.dumps({'step': 1000 * i, 'wall_time_s': 60.0 * i,
                          'charts/episodic_return': 20.0 + 10 * i}) + '\n')
  with open(os.path.join(run_dir, 'eval.jsonl'), 'w') as f:
    for i in (1, 3):
      f.write(json.dumps({'step': 1000 * i, 'eval/episodic_return': 30.0 * i,
                          'eval/episodic_return_stderr': 1.0, 'episodes': 10}) + '\n')
  return run_dir, q_net


@pytest.mark.e2e
def test_play_writes_an_animated_gif(cartpole_run, tmp_path):
  run_dir, _ = cartpole_run
  out = tmp_path / 'play.gif'
  proc = run_module('gorila_tf.tools.play', f'--run_dir={run_dir}', '--episodes=2',
                    f'--out={out}', timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert '2 episode(s) of 77 updates' in proc.stdout
  image = Image.open(out)
  assert image.format == 'GIF' and image.n_frames > 10


@pytest.fixture(scope='module')
def pong_run(tmp_path_factory):
  """A Pong run dir with config.json and one (untrained) checkpoint."""
  run_dir = str(tmp_path_factory.mktemp('runs') / 'pong')
  config = config_lib.resolve('pong')
  run_dir_lib.prepare(run_dir, config)
  q_net = networks.make_q_network(config.network,
                                  environments.env_info(config.env), seed=3)
  checkpoint = tf.train.Checkpoint(q_network=q_net,
                                   frames=tf.Variable(0, dtype=tf.int64))
  tf.train.CheckpointManager(checkpoint, os.path.join(run_dir, 'checkpoints'),
                             max_to_keep=1).save(checkpoint_number=5)
  return run_dir


def gif_frames(path):
  """Every frame of a GIF as an RGB array."""
  image = Image.open(path)
  frames = []
  for i in range(image.n_frames):
    image.seek(i)
    frames.append(np.asarray(image.convert('RGB'), np.int32))
  return frames


@pytest.mark.parametrize('view, size, coloured', [
    (None, (420, 320), True),  # default: the emulator's 210x160 screen, x2
    ('agent', (168, 168), False),  # the network's 84x84 gray input, x2
])
@pytest.mark.e2e
def test_play_records_the_game_in_colour_unless_asked_for_the_agents_view(
    pong_run, tmp_path, view, size, coloured):
  out = tmp_path / 'pong.gif'
  args = [f'--run_dir={pong_run}', '--max_frames=200', f'--out={out}']
  proc = run_module('gorila_tf.tools.play', *args,
                    *([f'--view={view}'] if view else []), timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert '1 episode(s) of 5 updates' in proc.stdout
  frames = gif_frames(out)
  assert len(frames) > 40 and frames[0].shape == size + (3,)
  channels_differ = any((f[..., 0] != f[..., 1]).any() and
                        (f[..., 1] != f[..., 2]).any() for f in frames)
  assert channels_differ == coloured


BLOCK_GORILA = (
    'import sys\n'
    'class Block:\n'
    '  def find_spec(self, name, path=None, target=None):\n'
    '    if name.split(".")[0] == "gorila_tf": raise ImportError("no gorila_tf")\n'
    'sys.meta_path.insert(0, Block())\n')


@pytest.mark.e2e
def test_exported_policy_loads_and_acts_without_gorila_tf(cartpole_run, tmp_path):
  run_dir, q_net = cartpole_run
  out = tmp_path / 'policy'
  proc = run_module('gorila_tf.tools.export', f'--run_dir={run_dir}', f'--out={out}',
                    timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  observations = np.random.default_rng(0).normal(size=(16, 1, 4)).astype(np.float32)
  np.save(tmp_path / 'obs.npy', observations)
  script = BLOCK_GORILA + (
      'import numpy as np, tensorflow as tf\n'
      f'policy = tf.saved_model.load({str(out)!r})\n'
      f'obs = np.load({str(tmp_path / "obs.npy")!r})\n'
      'print("ACTIONS", policy.action(obs).numpy().tolist())\n'
      'print("SIGNATURES", sorted(policy.signatures))\n')
  loaded = subprocess.run([sys.executable, '-c', script], capture_output=True,
                          text=True, timeout=300, cwd=str(tmp_path))
  assert loaded.returncode == 0, loaded.stderr[-2000:]
  actions = json.loads(loaded.stdout.split('ACTIONS ')[1].splitlines()[0])
  expected = tf.argmax(q_net(observations), axis=-1).numpy().tolist()
  assert actions == expected and set(actions) <= {0, 1}
  assert "['q_values', 'serving_default']" in loaded.stdout


@pytest.mark.e2e
def test_an_exported_policy_is_scored_and_played_by_its_own_game(cartpole_run,
                                                                 tmp_path):
  # The SavedModel carries its run's config: gorila-eval and gorila-play
  # need nothing else to score it with the protocol and to watch it.
  run_dir, _ = cartpole_run
  out = tmp_path / 'policy'
  assert run_module('gorila_tf.tools.export', f'--run_dir={run_dir}',
                    f'--out={out}', timeout=300).returncode == 0
  scored = run_module('gorila_tf.tools.evaluate', f'--policy={out}',
                      '--set=eval.episodes=3', '--set=eval.parallel_envs=3',
                      timeout=300)
  assert scored.returncode == 0, scored.stderr[-2000:]
  row = json.loads(scored.stdout.strip().splitlines()[-1])
  assert row['env_id'] == 'CartPole-v1' and row['episodes'] == 3
  assert row['mean'] >= 8  # a CartPole episode lasts at least 8 steps
  gif = tmp_path / 'p.gif'
  played = run_module('gorila_tf.tools.play', f'--policy={out}', f'--out={gif}',
                      timeout=300)
  assert played.returncode == 0, played.stderr[-2000:]
  assert f'1 episode(s) of policy {out}' in played.stdout
  # Another game for it: refused in one line (its network has CartPole's
  # inputs and actions).
  other = run_module('gorila_tf.tools.play', f'--policy={out}', f'--out={gif}',
                     '--set=env.id=ALE/Pong-v5', timeout=300)
  assert other.returncode == 2
  assert ('a policy plays the game it was trained on, CartPole-v1'
          in other.stderr.strip().splitlines()[-1])
  # Not a policy: one line that says what to give.
  refused = run_module('gorila_tf.tools.evaluate', f'--policy={run_dir}',
                       timeout=300)
  assert refused.returncode == 2
  assert 'is not a SavedModel directory' in refused.stderr
  assert 'Traceback' not in refused.stderr


@pytest.mark.e2e
def test_plot_writes_curves_and_a_results_table(cartpole_run, tmp_path):
  run_dir, _ = cartpole_run
  proc = run_module('gorila_tf.tools.plot', f'--run_dirs={run_dir}', f'--out={tmp_path}',
                    '--scores=50,1000', timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert 'not reached (best 90)' in (tmp_path / 'time_to_score.md').read_text()
  for name in ('CartPole-v1_frames.png', 'CartPole-v1_updates.png',
               'CartPole-v1_wall.png'):
    image = Image.open(tmp_path / name)
    assert image.format == 'PNG' and image.size[0] > 300
  table = (tmp_path / 'results.md').read_text()
  assert '| CartPole-v1 | 90.0 ± 1.0 |' in table


def test_time_to_score_is_the_first_evaluation_at_or_above_each_score():
  from gorila_tf.tools import plot  # pylint: disable=g-import-not-at-top
  c = {'frames': np.array([1e5, 2e5, 3e5, 4e5]),
       'updates': np.array([2e3, 4e3, 6e3, 8e3]),
       'minutes': np.array([6.0, 12.0, 18.0, 24.0]),
       'scores': np.array([-21.0, -9.0, -12.0, 1.0])}
  rows = plot.time_to_scores(c, [-10, 0, 18])
  assert [(r['frames'], r['updates'], r['minutes']) for r in rows] == [
      (2e5, 4e3, 12.0), (4e5, 8e3, 24.0), (None, None, None)]
  table = plot.time_to_score_table({'pong': c}, [-10, 18])
  assert table.splitlines()[2] == ('| pong | 0.20M frames, 4k updates, 12 min | '
                                   'not reached (best 1) |')


def test_an_evaluation_row_s_own_wall_time_and_updates_are_its_axes(tmp_path):
  # Rows with wall_time_s / updates use them; a row without them is placed
  # by the chief's progress at its frames.
  from gorila_tf.tools import plot  # pylint: disable=g-import-not-at-top
  (tmp_path / 'progress.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in (
      {'step': 0, 'wall_time_s': 0.0, 'learners/updates': 0},
      {'step': 1000, 'wall_time_s': 600.0, 'learners/updates': 100})))
  (tmp_path / 'eval.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in (
      {'step': 500, 'eval/episodic_return': 1.0},
      {'step': 1000, 'eval/episodic_return': 2.0, 'wall_time_s': 590.0,
       'updates': 99})))
  c = plot.curve(str(tmp_path))
  assert c['minutes'].tolist() == [5.0, 590.0 / 60]
  assert c['updates'].tolist() == [50.0, 99.0]


@pytest.mark.e2e
def test_commands_refuse_missing_inputs_with_one_line(tmp_path):
  for module, args in (('gorila_tf.tools.play', [f'--run_dir={tmp_path}']),
                       ('gorila_tf.tools.export', [f'--run_dir={tmp_path}', f'--out={tmp_path}/x']),
                       ('gorila_tf.tools.plot', [f'--run_dirs={tmp_path}'])):
    proc = run_module(module, *args, timeout=120)
    assert proc.returncode == 2, (module, proc.stderr[-1000:])
    assert proc.stderr.strip().splitlines()[-1].startswith('error: '), module
