#!/bin/bash
# Test window 1 (alone): equivalence arms timed (autograph on / off), the planted collapse timed.
cd /work/main
ts() { while IFS= read -r l; do printf '%s %s\n' "$(date +%H:%M:%S.%N | cut -c1-12)" "$l"; done; }
echo "== collapse $(date -u +%T)"
rm -rf /work/runs/s8/collapse_run
.venv/bin/python -m gorila_tf.launch.local --config=cartpole --run_dir=/work/runs/s8/collapse_run \
  --set=faults.kill_units_at_update=1000 --set=health.every_updates=200 --set=run.max_frames=10000000 2>&1 | ts > /work/runs/s8/collapse.out
echo "exit ${PIPESTATUS[0]}" >> /work/runs/s8/collapse.out
echo "== eq on $(date -u +%T)"
CODE=/work/main .venv/bin/python /work/runs/s8/eq_time.py 2>&1 | grep -v "cuda\|cuDNN\|cuFFT\|cuBLAS\|TensorRT\|cpu_feature\|AVX2 FMA" > /work/runs/s8/eq_on.out
echo "== eq off $(date -u +%T)"
CODE=/work/runs/s8/ag_off PYTHONPATH=/work/runs/s8/ag_off .venv/bin/python /work/runs/s8/eq_time.py 2>&1 | grep -v "cuda\|cuDNN\|cuFFT\|cuBLAS\|TensorRT\|cpu_feature\|AVX2 FMA" > /work/runs/s8/eq_off.out
echo "== done $(date -u +%T)"
