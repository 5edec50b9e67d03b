"""Pong on a small machine as fast as we know how (beyond the paper's settings).

Same distributed system (ps, bundles, chief). The paper's (from `pong`):
the Torch7 initialisation, Huber loss, gamma 0.99, reward clipping, 30
no-op starts. This package's, for speed on 2 cores (after Rainbow/Dopamine,
Tianshou and CleanRL's Atari DQNs): the 2013 DQN's smaller network,
3-step returns, double DQN, Adam (lr 1e-4, reached
over a 10k-update warm-up), epsilon to 0.01 over 1M frames, one 64-batch
update per 10 agent steps (6.4 samples per insert, Tianshou's), the target
refreshed every 2,000 updates, replay 50k per bundle from 5k, actors
refreshing every 50 steps, the learner's replica read every 2 updates and
prefetched, bfloat16 compute where the CPU has it. Measured: docs/learning.md.
"""

import dataclasses

from gorila_tf import config as cfg
from gorila_tf.configs import pong


def get_config() -> cfg.GorilaConfig:
  base = pong.get_config()
  return dataclasses.replace(
      base,
      actor=dataclasses.replace(
          base.actor,
          epsilon_end=0.01,
          epsilon_decay_frames=1_000_000,  # 250k agent steps
          param_refresh_steps=50,
      ),
      replay=dataclasses.replace(
          base.replay,
          capacity=50_000,  # transitions per bundle
          min_size=5_000,
          # One update per 10 agent steps (Tianshou's rate), of 64 (below):
          # ~800 frames/s at ~19.5 updates/s here. Per 32-batch: at 8.0 (one
          # per 4, learner-bound, ~410 frames/s) the evaluation was still
          # -14.4 at 92k updates (seed 0, 2026-12-04); at 3.2, +14.7 at 89k
          # (seed 4) and -10.3 at 79k (seed 5, 2026-12-06; docs/learning.md).
          samples_per_insert=6.4,
      ),
      # The convolutions and matrix products in bfloat16 where the CPU has
      # the instructions (oneDNN's AVX-512 BF16 kernels; parameters,
      # Q-values and loss stay float32), else float32: 1.28x the float32
      # cluster's updates/s on 2 cores; the learning check passes on every
      # bfloat16 run of the screen (docs/benchmarks.md, learning.md).
      # The 2013 DQN's network (Mnih et al. 2013: conv 16x8x8/4, conv
      # 32x4x4/2, FC 256; a third of the Nature network's multiply-adds):
      # ~2x the cluster's updates/s on a 2-core CPU (25.0 against 12.8
      # without bf16). Behind the Nature network per update, ahead per
      # minute: at 45 min -10.4, -8.2 and -10.3 on seeds 2, 3, 4 where the
      # Nature network was at -15 (seed 2, 40 min) on the same CPU
      # (2026-12-07, docs/learning.md). network.kind=nature_cnn for it.
      network=dataclasses.replace(base.network, kind='nips_cnn',
                                  compute_dtype='auto'),
      learner=dataclasses.replace(
          base.learner,
          # 1.5x batch 32's samples/s on this CPU (fuller kernels); at 45 min
          # +0.1 (seed 2) and -4.4 (seed 3, with the warm-up) against batch
          # 32's -9.3 and -14.7 on the same seeds (docs/learning.md).
          batch_size=64,
          optimizer='adam',
          learning_rate=1e-4,
          # Adam's first steps move every weight by ~lr whatever its
          # gradient: without a warm-up, 31 of conv_0's 32 channels died by
          # 8k updates (seed 2) after a flat probe; with it no health warning
          # on 3 seeds, conv_0 56-69 % dead at the end; 45-min scores within
          # the seeds' spread (seed 2: -6.4 at 35 min against -18.0; seed 4:
          # -12.0 at 45 against -7.7; 2026-12-06, docs/learning.md).
          learning_rate_warmup=10_000,
          # Per weight, dense_0's gradient RMS is ~3e-5: Dopamine's 1.5e-4
          # shrank its Adam steps to ~1/6 of the learning rate, 1e-8 (PyTorch's)
          # killed the network in 5 minutes. 1e-5 (steps ~0.75 of it): -15
          # at 20 min instead of 40 on seed 2, -9.3 at 45 min instead of
          # -14.9; seed 3 -14.7 at 45 min (docs/learning.md, 2026-12-06).
          optimizer_epsilon=1e-5,  # for this package's mean loss
          optimizer_epsilon_units='mean_loss',  # (atari's is 'summed_loss')
          target_update_period=2_000,  # updates
          n_step=3,
          double_dqn=True,
          replica_sync_period=2,
          # The next replica read during the step before it (one update
          # older, counted as such): 1.11x the updates/s, the same maths as
          # the one-process update at that age (tests/runtime/test_equivalence).
          prefetch_replica=True,
      ),
      # Every checkpoint evaluated as soon as the evaluator is free, on 10
      # quick episodes (a late Pong evaluation of 30 episodes of up to
      # 18,000 frames needs ~5 minutes of its 0.2-core budget); a quick +18
      # is confirmed on the protocol's 30 before the run stops.
      eval=dataclasses.replace(base.eval, every_s=60.0, quick_episodes=10),
      run=dataclasses.replace(base.run, max_frames=20_000_000,
                              checkpoint_every_s=300.0,
                              stop_at_eval_return=18.0),  # the agent plays
      launch=dataclasses.replace(base.launch, evaluator=True),
  )
