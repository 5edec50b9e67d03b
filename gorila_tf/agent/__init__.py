"""The DQN agent, apart from the machinery that distributes it.

    dqn          the maths: targets, losses, epsilon schedules, Gorila's tests
    networks     Q-networks as parameters plus a pure function that applies them
    optimizers   the parameter server's update rules (centered RMSProp, Adam)
    learner      one learner round: replica, gradient, accept or discard, apply
    actor        epsilon-greedy acting in a vector env, writing replay
    replay       what a transition is in the replay table, its writer, its dataset
    environments the games (ALE, gymnasium) as vector envs
    health       is the Q-network alive? (dead units, Q spread)

Nothing here imports gorila_tf.runtime or the tools (tests/test_layout.py).
"""
