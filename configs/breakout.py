"""Breakout with the shared Atari hyperparameters, sized like `pong`."""

import dataclasses

from gorila_tf import config as cfg
from gorila_tf.configs import pong


def get_config() -> cfg.GorilaConfig:
  base = pong.get_config()
  return dataclasses.replace(
      base, env=dataclasses.replace(base.env, id='ALE/Breakout-v5'))
