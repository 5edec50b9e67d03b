#!/bin/bash
# The one-process pong_fast update: Nature network against the 2013 (NIPS) one, batch 64 and 32, alone.
cd /work/main
B=".venv/bin/python -m gorila_tf.lab.bench"
O=/work/runs/bench11
date > $O/started
$B --sections=limit --config=pong_fast --limit_batches=64,32 --seconds=15 --out=$O/limit_nature.json > $O/limit_nature.log 2>&1
$B --sections=limit --config=pong_fast --limit_batches=64,32 --seconds=15 --set=network.kind=nips_cnn --out=$O/limit_nips.json > $O/limit_nips.log 2>&1
date > $O/ended
