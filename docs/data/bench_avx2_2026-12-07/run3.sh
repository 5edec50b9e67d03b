#!/bin/bash
cd /work/main
O=/work/runs/bench7
L=".venv/bin/python -m gorila_tf.lab.bench --sections=limit --config=pong_fast --limit_batches=32,64 --seconds=20"
TF_ENABLE_ONEDNN_OPTS=1 $L --out=$O/limit_onednn.json > $O/limit_onednn.log 2>&1
$L --out=$O/limit_again.json > $O/limit_again.log 2>&1
TF_ENABLE_ONEDNN_OPTS=1 $L --out=$O/limit_onednn_again.json > $O/limit_onednn_again.log 2>&1
date > $O/ended3
