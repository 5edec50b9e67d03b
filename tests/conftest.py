"""Shared test set-up: quiet TF, fail-fast gRPC, helpers to run the CLI."""

import os
import subprocess
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('GRPC_FAIL_FAST', 'use_caller')

import pytest  # pylint: disable=g-import-not-at-top

# Before any test module imports TensorFlow: the kernels the package's own
# processes run (oneDNN's, gorila_tf/__init__.py).
import gorila_tf  # pylint: disable=g-import-not-at-top,unused-import

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


@pytest.fixture(autouse=True)
def no_launcher_left_running():
  # A launcher left by a failed or skipped end-to-end test would train on
  # beside every later test (one did: 5 tasks on 2 cores for minutes).
  yield
  e2e = sys.modules.get('tests.launch.test_e2e')
  if e2e is not None:
    e2e.Launcher.stop_all()


# What a test needs, as a marker: `make test-fast` runs the unit tests.
#   unit     in this process: maths, parsing, fakes, real ALE and Reverb
#   cluster  an in-process tf.distribute cluster or real servers (a child)
#   e2e      whole commands and clusters of processes (seconds to minutes)
#   hosts    network namespaces and cgroups (root)
KINDS = ('unit', 'cluster', 'e2e', 'hosts')
MODULE_KINDS = {
    'test_e2e': 'e2e', 'test_single': 'e2e',
    'test_emulated_hosts': 'hosts', 'test_hosts': 'hosts',
    'test_inprocess_cluster': 'cluster', 'test_equivalence': 'cluster',
    'test_concurrency': 'cluster', 'test_gpu': 'cluster',
}


@pytest.hookimpl(tryfirst=True)  # the kinds before `-m` deselects
def pytest_collection_modifyitems(items):
  """Every test gets one kind: its own marker, its module's, else unit."""
  for item in items:
    if any(item.get_closest_marker(kind) for kind in KINDS):
      continue
    module = item.module.__name__.rsplit('.', 1)[-1]
    item.add_marker(getattr(pytest.mark, MODULE_KINDS.get(module, 'unit')))
