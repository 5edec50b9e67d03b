#!/bin/bash
# pong_fast cluster (evaluator off), 90 s each, alternating: Eigen (oneDNN off), oneDNN, oneDNN with 1 ps + 1 bundle.
while [ ! -f /work/runs/bench7/ended3 ]; do sleep 5; done
cd /work/main
O=/work/runs/bench7
E=".venv/bin/python -m gorila_tf.lab.bench --sections=e2e --config=pong_fast --set=launch.evaluator=false --seconds=90"
for i in 1 2; do
  TF_ENABLE_ONEDNN_OPTS=0 $E --out=$O/e_eigen_$i.json > $O/e_eigen_$i.log 2>&1
  $E --out=$O/e_onednn_$i.json > $O/e_onednn_$i.log 2>&1
  $E --set=launch.num_ps=1 --set=launch.num_workers=1 --out=$O/e_onednn_ps1w1_$i.json > $O/e_onednn_ps1w1_$i.log 2>&1
done
date > $O/ended4
