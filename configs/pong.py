"""Pong with the shared Atari hyperparameters, sized for a small machine.

`make run` uses this preset: 2 ps, 2 bundles and a chief on loopback, which
fits a 2-core laptop. Replay sizes are scaled down so learning starts within
a minute; the DQN maths and the frame-based schedules are the paper's.
"""

import dataclasses

from gorila_tf import config as cfg
from gorila_tf.configs import atari


def get_config() -> cfg.GorilaConfig:
  base = atari.get_config()
  return dataclasses.replace(
      base,
      env=dataclasses.replace(base.env, id='ALE/Pong-v5'),
      actor=dataclasses.replace(base.actor, envs_per_bundle=4),
      replay=dataclasses.replace(
          base.replay,
          capacity=100_000,  # transitions per bundle
          min_size=5_000,  # transitions per bundle before sampling
      ),
      run=dataclasses.replace(base.run, max_frames=10_000_000,
                              checkpoint_every_s=300.0),
      launch=cfg.LaunchConfig(num_ps=2, num_workers=2, evaluator=False),
  )
