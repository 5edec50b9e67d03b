"""Dead ReLUs in a Pong run's newest checkpoint, against the same seed's fresh network.

  python docs/data/pong_dead_units.py <run_dir>

A unit or channel is dead when it is 0 on all 100 real Pong states (random
play); prints each layer's dead share, and how far each parameter moved.
"""
import os, glob
os.environ['TF_CPP_MIN_LOG_LEVEL']='3'
import numpy as np, tensorflow as tf
from gorila_tf import config as config_lib
from gorila_tf.agent import environments, networks
from gorila_tf.runtime import evaluator, run_dir as rd
import sys; run=sys.argv[1]
config=rd.read_config(run); info=environments.env_info(config.env)
env = environments.VectorEnv(config.env, 1, 0, noop_max=30, max_episode_frames=18000)
obs = env.reset(); rng=np.random.default_rng(0); frames=[]
for t in range(1000):
    obs, *_ = env.step(rng.integers(0, 6, size=1))
    if t % 10 == 0: frames.append(obs[0])
env.close()
x0 = tf.constant(np.stack(frames))
ck=sorted(glob.glob(run+'/checkpoints/ckpt-*.index'), key=lambda p:int(p.split('-')[-1].split('.')[0]))
nets = {f'fresh seed {config.run.seed}': networks.make_q_network(config.network, info, seed=config.run.seed)}
q_net,_,fr = evaluator.restore_online_network(ck[-1][:-6], config, info); nets[f'run @ {int(fr)} frames'] = q_net
for name, net in nets.items():
    p = net.read()
    x = tf.transpose(tf.cast(x0, tf.float32) / 255.0, [0, 2, 3, 1])
    report = []
    for i, (_, _, stride) in enumerate(networks.NATURE_CONV_LAYERS):
        x = tf.nn.relu(tf.nn.conv2d(x, p[2*i], stride, 'VALID') + p[2*i+1])
        a = x.numpy().reshape(-1, x.shape[-1])
        report.append(f'conv{i}: dead channels {(a.max(0) <= 0).mean():.2f}')
    h = tf.reshape(x, [x.shape[0], -1])
    h = tf.nn.relu(h @ p[6] + p[7]).numpy()
    report.append(f'dense: dead units {(h.max(0) <= 0).mean():.3f}')
    report.append(f'bias ranges: ' + ', '.join(f'{float(p[j].numpy().min()):.3f}..{float(p[j].numpy().max()):.3f}' for j in (1,3,5,7)))
    report.append(f'kernel abs-mean: ' + ', '.join(f'{float(np.abs(p[j].numpy()).mean()):.4f}' for j in (0,2,4,6,8)))
    print(name, '|', ' | '.join(report))
a = nets[f'fresh seed {config.run.seed}'].read(); b = q_net.read()
for j,(x,y) in enumerate(zip(a,b)):
    x=x.numpy(); y=y.numpy()
    print(j, x.shape, 'max|diff|', float(np.abs(x-y).max()), 'mean|diff|', float(np.abs(x-y).mean()), 'frac changed', float((x!=y).mean()))
