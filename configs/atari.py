"""The paper's shared Atari hyperparameters (Nature DQN, used by Gorila for all 49 games).

Gorila (Nair et al. 2015) ran every game with one set of DQN hyperparameters
(Mnih et al. 2015). Frame-based quantities are in emulator frames: DQN's
"1M frames" of epsilon decay and replay are agent steps, i.e. 4M frames here.
Cluster sizes are the local launcher's defaults; a real cluster sets its own
through TF_CONFIG.

Three settings follow Nature DQN's released code (deepmind/dqn) rather than a
literal reading of the numbers:
  * the initialisation: Torch7's default for its layers, every weight and
    bias uniform in +-1/sqrt(fan_in) (network.init='torch', the package's
    default); Glorot weights with zero biases let 44-97 % of the first conv
    layer's channels die in 300k Pong frames (docs/learning.md);
  * the optimizer: centered RMSProp with epsilon 0.01 inside the square root,
    stated for Nature's batch-SUMMED gradient (dqn/NeuralQLearner.lua); this
    package averages the loss, so `optimizer_epsilon_units='summed_loss'` has
    the optimizer use 0.01 / batch_size^2 (DQN Zoo's 0.01 / 32**2): Nature's
    step, up to float rounding, also if learner.batch_size is changed (see
    gorila_tf/agent/optimizers.py);
  * the target refresh: every 10,000 AGENT steps, as Nature's code (run_gpu
    target_q=10000, counted in agent steps), DQN Zoo (40k frames) and Dopamine
    (dqn_nature.gin, 10000 agent steps). This package counts the period in
    applied updates, so that is 2,500 updates at one update of 32 per 4 agent
    steps (replay.samples_per_insert = 8 = 32 / 4).
"""

from gorila_tf import config as cfg


def get_config() -> cfg.GorilaConfig:
  return cfg.GorilaConfig(
      env=cfg.EnvConfig(
          id='ALE/Pong-v5',
          frameskip=4,  # frames per agent step
          frame_stack=4,  # frames per agent state
          noop_max=30,  # random no-op steps at episode start
          repeat_action_probability=0.0,  # no sticky actions, as in the paper
          terminal_on_life_loss=True,
          max_episode_frames=108_000,  # 30 minutes of play
      ),
      network=cfg.NetworkConfig(kind='nature_cnn'),
      actor=cfg.ActorConfig(
          envs_per_bundle=4,
          epsilon_start=1.0,
          epsilon_end=0.1,
          epsilon_decay_frames=4_000_000,  # 1M agent steps
          param_refresh_steps=100,
      ),
      replay=cfg.ReplayConfig(
          capacity=1_000_000,  # transitions per bundle
          min_size=50_000,  # transitions per bundle
          samples_per_insert=8.0,  # one 32-batch update per 4 agent steps
          # (Nature's update_freq=4)
      ),
      learner=cfg.LearnerConfig(
          batch_size=32,
          discount=0.99,
          optimizer='rmsprop',
          learning_rate=0.00025,
          rmsprop_rho=0.95,
          optimizer_epsilon=0.01,  # inside the sqrt, for the summed loss:
          optimizer_epsilon_units='summed_loss',  # applied as 0.01 / 32^2
          huber_delta=1.0,
          reward_clip=1.0,
          target_update_period=2_500,  # updates = 10,000 agent steps at
          # batch_size / samples_per_insert = 32 / 8 = 4 agent steps per update
          steps_per_closure=4,
      ),
      eval=cfg.EvalConfig(episodes=30, epsilon=0.05, noop_max=30,
                          max_episode_frames=18_000),
      run=cfg.RunConfig(max_frames=200_000_000),  # 50M agent steps, as DQN
  )
