#!/bin/bash
# Times a planted-NaN CartPole run as the e2e test launches it.
d=${PROBE_DIR:-/work/runs/probes}/nan_$1; rm -rf $d; mkdir -p "$(dirname $d)"
cd "$(git rev-parse --show-toplevel)"
start=$(date +%s.%N)
.venv/bin/python -u -m gorila_tf.launch.local --config=cartpole --run_dir=$d \
  --set=faults.nan_after_updates=1000 --set=run.checkpoint_every_s=${CKPT:-2} \
  --set=run.max_frames=10000000 2>&1 | .venv/bin/python -u -c "
import sys,time
t0=float(sys.argv[1])
for l in sys.stdin: sys.stdout.write(f'{time.time()-t0:7.1f} {l}')
" $start > $d.out
echo "rc ${PIPESTATUS[0]} total $(echo "$(date +%s.%N) - $start" | bc)" >> $d.out
