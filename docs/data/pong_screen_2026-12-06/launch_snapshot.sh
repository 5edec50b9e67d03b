#!/bin/bash
# Launches gorila-launch from a snapshot of the committed tree, so that edits
# in /work/main never reach a running run (autograph reads source files when
# it traces). Usage: launch_snapshot.sh <run_name> <launcher args...>
set -e
name=$1; shift
sha=${SNAP_SHA:-$(git -C /work/main rev-parse --short HEAD)}
snap=/work/runs/code/$sha
if [ ! -d $snap ]; then
  mkdir -p /work/runs/code
  git -C /work/main archive --prefix=$sha/ HEAD | tar -x -C /work/runs/code
  ln -s ../launch $snap/gorila_tf/launch
  ln -s ../configs $snap/gorila_tf/configs
fi
cd $snap
echo "code $sha" >> /work/runs/$name.code
out=${OUT:-/work/runs/$name.out}  # OUT=...resume.out for a resumed run
PYTHONPATH=$snap nohup /work/main/.venv/bin/python -m gorila_tf.launch.local \
  --run_dir=/work/runs/$name --progress=lines "$@" > $out 2>&1 &
echo "started $name from $snap, pid $!"
