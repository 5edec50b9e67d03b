#!/usr/bin/env bash
# Creates (if missing) the Stable-Baselines3 peer-benchmark venv and installs
# requirements-bench-peers.lock into it. PyTorch stays out of the project's
# own venv: this one is only for gorila_tf/lab/peers/sb3_dqn.py.
#
# Usage: bash gorila_tf/lab/peers/install_sb3_venv.sh [VENV]  (default
# .venv-bench at the repo root). Idempotent: does nothing while the venv's
# stamp file is newer than the lock file.
#
# The lock pins torch==2.13.0+cpu, a CPU-only build that is not on PyPI
# itself: where no local wheel provides it, run with
# PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
venv="${1:-$repo/.venv-bench}"
lock="$repo/requirements-bench-peers.lock"
stamp="$venv/.bench-peers-installed"
python="${PYTHON:-python3}"

if [[ -f "$stamp" && "$stamp" -nt "$lock" ]]; then
  echo "install_sb3_venv: $venv is up to date with $(basename "$lock")"
  exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
  "$python" -m venv "$venv"
fi
# --no-deps: the lock is complete, so pip can pull nothing else (no CUDA
# wheels); pip check then proves the pinned set is consistent.
"$venv/bin/python" -m pip install --no-deps --disable-pip-version-check \
  -r "$lock"
"$venv/bin/python" -m pip check
"$venv/bin/python" -c 'import stable_baselines3, torch, ale_py, cv2'
touch "$stamp"
echo "install_sb3_venv: installed $(basename "$lock") into $venv"
