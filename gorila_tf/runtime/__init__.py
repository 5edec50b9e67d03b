"""The distributed runtime: the processes of a Gorila cluster and their books.

    builder      the one place an agent is wired from a config
    chief        schedules learners, publishes parameters, summaries, checkpoints
    bundle       a worker: learner closures + its Reverb replay + its actors
    ps           a parameter-server task and the chief's strategy
    model        the chief's sharded model, checkpoint items, replay dataset
    broadcast    parameters from the chief to the actors
    evaluator    scores checkpoints with the paper's protocol
    single       the agent in one process: no servers, the same code
    cluster, deadlines, bookkeeping, metrics, checkpointing,
    checkpoint_writer, lease, run_dir: what those roles share
"""
