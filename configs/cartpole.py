"""CartPole-v1: the quick preset that exercises every part in minutes.

Same processes and data path as Atari (ps, bundles with Reverb and actors,
chief), with an MLP and a small replay. Frames are CartPole steps here
(frameskip 1).
"""

from gorila_tf import config as cfg


def get_config() -> cfg.GorilaConfig:
  return cfg.GorilaConfig(
      env=cfg.EnvConfig(
          id='CartPole-v1',
          frameskip=1,
          frame_stack=1,
          noop_max=0,
          terminal_on_life_loss=False,
          max_episode_frames=500,  # CartPole-v1's own time limit
      ),
      network=cfg.NetworkConfig(kind='mlp', mlp_layers=(64, 64)),
      actor=cfg.ActorConfig(
          envs_per_bundle=4,
          epsilon_start=1.0,
          epsilon_end=0.05,
          epsilon_decay_frames=10_000,  # steps
          param_refresh_steps=10,  # vector steps
          stats_interval_s=0.5,
      ),
      replay=cfg.ReplayConfig(
          capacity=20_000,
          min_size=500,
          samples_per_insert=16.0  # 0.25 updates of 64 per step,
      ),
      learner=cfg.LearnerConfig(
          batch_size=64,
          discount=0.99,
          optimizer='adam',
          learning_rate=0.0005,
          optimizer_epsilon=1e-7,
          huber_delta=1.0,
          reward_clip=0.0,  # CartPole rewards are 1 per step already
          target_update_period=250,  # updates
          steps_per_closure=8,
      ),
      eval=cfg.EvalConfig(episodes=10, epsilon=0.0, noop_max=0,
                          max_episode_frames=500, parallel_envs=5, every_s=20.0),
      run=cfg.RunConfig(max_frames=40_000, checkpoint_every_s=30.0,
                        summary_every_s=2.0, publish_every_s=0.5),
      launch=cfg.LaunchConfig(num_ps=2, num_workers=2, evaluator=False,
                              min_shard_bytes=8 << 10)  # shards the 64x64 kernel,
  )
