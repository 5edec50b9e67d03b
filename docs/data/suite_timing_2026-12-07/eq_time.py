# Wall time per arm of the equivalence harness (run from a code tree: PYTHONPATH).
import sys, time, os, json
root = os.environ['CODE']
sys.path.insert(0, os.path.join(root, 'tests/runtime')); sys.path.insert(0, root)
import gorila_tf
import equivalence_harness as h
from gorila_tf import config as config_lib
from gorila_tf.runtime import ps
from gorila_tf.tools import inprocess_cluster
import tensorflow as tf
from gorila_tf.agent import learner as _l; print('learner from', _l.__file__, flush=True)
w0 = time.time()
task, _ = inprocess_cluster.start(num_ps=2, num_workers=1)
strategy = ps.make_strategy(task, config_lib.LaunchConfig().min_shard_bytes)
coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
info = h.environments.env_info(config_lib.resolve('pong').env)
print(f'setup {time.time() - w0:.1f} s', flush=True)
orig_dist, orig_rec = h.run_distributed, h.record_pong
def timed(*a, **k):
  t = time.time(); r = orig_dist(*a, **k); print(f'  run_distributed {time.time() - t:.1f} s', flush=True); return r
def rec(*a, **k):
  t = time.time(); r = orig_rec(*a, **k); print(f'  record_pong {time.time() - t:.1f} s', flush=True); return r
h.run_distributed, h.record_pong = timed, rec
results = {}
for arm in h.ARMS:
  t = time.time(); r = h.run_arms(strategy, coordinator, info, arms=[arm])
  worst = max(max(v['closure_errors']) for v in r.values())
  print(f'{h.arm_name(*arm)}: {time.time() - t:.1f} s, worst closure error {worst:.2e}', flush=True)
t = time.time(); h.run_arms(strategy, coordinator, info, arms=[('adam', 2, True)], reference_period=1); print(f'planted {time.time() - t:.1f} s')
print(f'total {time.time() - w0:.1f} s', flush=True)
os._exit(0)
