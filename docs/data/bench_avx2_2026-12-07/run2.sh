#!/bin/bash
# After run.sh: the limit with oneDNN forced on (TF enables it by default only on AVX-512 CPUs).
while pgrep -f bench7/run.sh > /dev/null; do sleep 5; done
cd /work/main
O=/work/runs/bench7
TF_ENABLE_ONEDNN_OPTS=1 .venv/bin/python -m gorila_tf.lab.bench --sections=limit --config=pong_fast --limit_batches=32,64 --seconds=20 --out=$O/limit_onednn.json > $O/limit_onednn.log 2>&1
date > $O/ended2
