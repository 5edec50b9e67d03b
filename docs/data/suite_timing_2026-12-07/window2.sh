#!/bin/bash
# Test window 2: where a worker waits when the run stops (SIGTERM to the launcher; SIGUSR1 dumps the worker's stacks 3 s after its own SIGTERM).
cd /work/main
ts() { while IFS= read -r l; do printf '%s %s\n' "$(date +%H:%M:%S.%N | cut -c1-12)" "$l"; done; }
rm -rf /work/runs/s8/stop_run
out=/work/runs/s8/stop.out
( .venv/bin/python -m gorila_tf.launch.local --config=cartpole --run_dir=/work/runs/s8/stop_run --set=run.max_frames=10000000 2>&1 | ts > $out ) &
sleep 2
lpid=$(pgrep -f "launch.local --config=cartpole --run_dir=/work/runs/s8/stop_run")
for i in $(seq 60); do grep -q "updates [1-9]" $out && break; sleep 1; done
sleep 5
echo "$(date +%H:%M:%S.%N | cut -c1-12) TERM to launcher $lpid" >> $out
kill -TERM $lpid
w0=$(grep -o "started worker0 (pid [0-9]*" $out | grep -o "[0-9]*$")
for i in $(seq 200); do grep -q "signal 15, stopping" /work/runs/s8/stop_run/logs/worker0.log 2>/dev/null && break; sleep 0.3; done
sleep 3
echo "$(date +%H:%M:%S.%N | cut -c1-12) USR1 to worker0 $w0" >> $out
kill -USR1 $w0
wait
echo "window2 done $(date -u +%T)"
