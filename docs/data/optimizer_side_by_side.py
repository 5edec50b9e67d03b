"""Nature's optimizer step vs the old setting on the same Pong replay (offline A/B).

Fills one replay with real Pong transitions (a real actor, ε = 1), then trains
two single-process learners from the same initial network on the same batches:
'before' (RMSProp ε = 0.01 on the batch-mean loss, the old atari preset) and
'after' (ε stated for the summed loss: 0.01 / 32², the preset now). Prints the
TD loss and mean Q every 250 updates.
"""
import json, os, sys, time
os.environ['TF_CPP_MIN_LOG_LEVEL'] = '2'
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..'))
import numpy as np, tensorflow as tf
from gorila_tf import config as config_lib
from gorila_tf.agent import environments, learner, networks, optimizers, replay
from gorila_tf.lab import bench
config = config_lib.resolve('pong')
info = environments.env_info(config.env)
server = bench.prefilled_replay(config, info, 20_000)
it = iter(replay.make_dataset([f'localhost:{server.port}'], info, 32))
batches = [next(it) for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)]
curves = {}
for name, units in (('before', 'mean_loss'), ('after', 'summed_loss')):
  c = config_lib.apply_overrides(config, [f'learner.optimizer_epsilon_units={units}'])
  q = networks.make_q_network(c.network, info, seed=0)
  target = networks.make_q_network(c.network, info, seed=0)
  opt = optimizers.Optimizer(c.learner, q.parts())
  rules = learner.Learner(q_net=q, target_net=target, optimizer=opt, state=None, learner=c.learner)
  @tf.function
  def step(batch):
    loss, grads, chosen = rules.gradient(batch, q.read(), target.read())
    opt.apply(networks.split_gradients(grads, q))
    return loss, tf.reduce_mean(chosen)
  rows = []
  for k, b in enumerate(batches):
    if k and k % c.learner.target_update_period == 0:
      for t, o in zip(target.params, q.params): t.assign(o)
    loss, mean_q = step(b)
    rows.append((float(loss), float(mean_q)))
  curves[name] = rows
for k in range(0, len(batches), 250):
  window = slice(k, k + 250)
  b = np.mean([r[0] for r in curves['before'][window]]); a = np.mean([r[0] for r in curves['after'][window]])
  qb = np.mean([r[1] for r in curves['before'][window]]); qa = np.mean([r[1] for r in curves['after'][window]])
  print(f'updates {k:5d}-{k+249:5d}  TD loss before {b:.5f} after {a:.5f}   mean Q before {qb:.3f} after {qa:.3f}', flush=True)
json.dump(curves, open(os.path.join(os.path.dirname(__file__), 'optimizer_side_by_side_2026-11-25.json'), 'w'))
server.stop()
os._exit(0)
