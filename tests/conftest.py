"""Shared test set-up: quiet TF, fail-fast gRPC, helpers to run the CLI."""

import os
import subprocess
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('GRPC_FAIL_FAST', 'use_caller')

import pytest  # pylint: disable=g-import-not-at-top

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_module(module: str, *args: str, env: dict | None = None,
               timeout: float = 600) -> subprocess.CompletedProcess:
  """Runs `python -m module args` from the repo root, capturing output."""
  full_env = dict(os.environ)
  full_env.update(env or {})
  return subprocess.run([sys.executable, '-m', module, *args], cwd=REPO,
                        env=full_env, capture_output=True, text=True,
                        timeout=timeout)


@pytest.fixture
def run_dir(tmp_path):
  return str(tmp_path / 'run')
