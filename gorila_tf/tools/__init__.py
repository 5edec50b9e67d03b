"""Commands and tools, apart from the roles of the paper's figure.

  evaluate.py           gorila-eval: score a checkpoint with the paper's protocol
  play.py               gorila-play: watch a checkpoint play, as a GIF
  export.py             gorila-export: the greedy policy as a plain SavedModel
  plot.py               gorila-plot: learning curves and a results table
  suite.py              gorila-suite: the paper's 49 games
  bench.py              gorila-bench: throughput and memory, side by side
  bench_faults.py       the bench's fault section: recovery times
  bench_report.py       the bench's ratios and table
  inprocess_cluster.py  real ps/worker servers in this process (tests, bench)
  peers/                peer DQN loops the bench compares against
"""
