#!/bin/bash
# Copies a finished run's record into docs/data/pong_screen_2026-12-06/<name>/.
set -e
name=$1
src=/work/runs/$name
dst=/work/main/docs/data/pong_screen_2026-12-06/$name
mkdir -p $dst
cp $src/config.json $src/progress.jsonl $dst/
[ -f $src/eval.jsonl ] && cp $src/eval.jsonl $dst/
[ -f $src/PLAYS.json ] && cp $src/PLAYS.json $dst/
cp /work/runs/$name.code $dst/code.txt 2>/dev/null || true
cat /work/runs/$name.out /work/runs/$name.resume*.out 2>/dev/null | grep -E "^\[launcher\]|error:|health:|eval of" | grep -v "kept in" > $dst/launcher_lines.txt || true
grep "eval of" $src/logs/evaluator.log | sed 's/^.*eval of/eval of/' > $dst/evaluations.txt || true
cd /work/main
python3 docs/data/evaluator_cost.py $src --out=$dst/evaluator_cost.json > /dev/null || true
.venv/bin/python -m gorila_tf.tools.plot --run_dirs=$src --out=$dst/plots --scores=-20,-15,-10,0,10,18 > /dev/null 2>&1 || true
ls $dst $dst/plots
