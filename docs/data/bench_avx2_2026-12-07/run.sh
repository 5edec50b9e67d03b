#!/bin/bash
# This VM's figures (AVX2 only): the one-process limit, then the pong_fast cluster's arms.
cd /work/main
B=".venv/bin/python -m gorila_tf.lab.bench"
O=/work/runs/bench7
date > $O/started
$B --sections=limit --config=pong_fast --limit_batches=32,64 --seconds=20 --out=$O/limit.json > $O/limit.log 2>&1
$B --sections=e2e --config=pong_fast --set=launch.evaluator=false --seconds=60 --out=$O/base.json > $O/base.log 2>&1
$B --sections=e2e --config=pong_fast --set=launch.evaluator=false --set=launch.num_ps=1 --seconds=60 --out=$O/ps1.json > $O/ps1.log 2>&1
$B --sections=e2e --config=pong_fast --set=launch.evaluator=false --set=launch.num_ps=1 --set=launch.num_workers=1 --seconds=60 --out=$O/ps1_w1.json > $O/ps1_w1.log 2>&1
$B --sections=e2e --config=pong_fast --set=launch.evaluator=false --seconds=60 --out=$O/base_again.json > $O/base_again.log 2>&1
date > $O/ended
