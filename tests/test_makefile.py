"""`make` finds a Python 3.11 for .venv, or stops with one line saying how to get one.

Each test runs the real Makefile with GNU make in a temporary directory that
holds only the Makefile and empty requirements.lock / setup.py, with a PATH of
fake interpreters (shell scripts that answer the Makefile's version query and
log every call) and the few tools the recipes use, so no real Python on this
machine is found and nothing is installed.
"""

import os
import re
import shutil
import subprocess

import pytest

from tests.conftest import REPO

MAKE = shutil.which('make')
pytestmark = pytest.mark.skipif(MAKE is None, reason='needs GNU make on PATH')

# What the recipes run besides the interpreters (sh itself is make's SHELL).
TOOLS = ('touch', 'mkdir', 'cp', 'rm', 'echo')

FAKE_PYTHON = """#!/bin/sh
# A fake Python {version}: answers `-c CODE` (the Makefile's version query) with
# its version, makes a venv by copying itself, and logs every call.
echo "$0 $*" >> "{log}"
case "$1" in
  --version|-V) echo "Python {version}";;
  -c) echo "{version}";;
  -m) if [ "$2" = venv ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; fi;;
esac
"""


class Sandbox:
  """A directory with the Makefile, fake interpreters and a bare PATH."""

  def __init__(self, root):
    self.root = str(root)
    self.work = os.path.join(self.root, 'work')
    self.fakes = os.path.join(self.root, 'fakes')
    self.tools = os.path.join(self.root, 'tools')
    self.log = os.path.join(self.root, 'calls.log')
    for d in (self.work, self.fakes, self.tools):
      os.makedirs(d)
    shutil.copy(os.path.join(REPO, 'Makefile'), self.work)
    for name in ('requirements.lock', 'setup.py'):
      open(os.path.join(self.work, name), 'w').close()
    for tool in TOOLS:
      os.symlink(shutil.which(tool, path='/usr/bin:/bin'),
                 os.path.join(self.tools, tool))
    open(self.log, 'w').close()

  def python(self, name, version, where=None):
    """Writes a fake interpreter `name` reporting `version`; returns its path."""
    path = os.path.join(where or self.fakes, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
      f.write(FAKE_PYTHON.format(version=version, log=self.log))
    os.chmod(path, 0o755)
    return path

  def make(self, *args):
    env = {'PATH': f'{self.fakes}:{self.tools}', 'HOME': self.root,
           'LC_ALL': 'C'}
    return subprocess.run([MAKE, *args], cwd=self.work, env=env,
                          capture_output=True, text=True, timeout=60)

  def calls(self):
    return open(self.log).read().splitlines()

  def venv_exists(self):
    return os.path.lexists(os.path.join(self.work, '.venv'))


@pytest.fixture
def box(tmp_path):
  return Sandbox(tmp_path)


def assert_refused(box, result, found):
  """Make stopped with one stderr line naming `found`, 3.11 and how to get it."""
  assert result.returncode != 0
  assert result.stdout == ''
  lines = result.stderr.splitlines()
  assert len(lines) == 1, result.stderr
  line = lines[0]
  assert found in line and '3.11' in line, line
  assert 'TensorFlow 2.15.1' in line and 'dm-reverb 0.14.0' in line, line
  assert 'pyenv install 3.11' in line and 'make PYTHON=' in line, line
  assert not box.venv_exists(), 'nothing may be created before the check'
  assert not any(' -m ' in c for c in box.calls()), box.calls()


def test_python3_312_and_no_python311_is_refused_with_one_line(box):
  box.python('python3', '3.12.3')
  result = box.make('test')
  assert_refused(box, result, '3.12')
  assert 'python3 is Python 3.12.3' in result.stderr


def test_make_run_is_refused_the_same_way(box):
  box.python('python3', '3.12.3')
  assert_refused(box, box.make('run'), '3.12')


def test_python_given_that_is_not_311_is_refused_even_with_a_good_python3(box):
  box.python('python3', '3.11.9')
  python313 = box.python('python3.13', '3.13.1', where=os.path.join(box.root, 'opt'))
  result = box.make('test', f'PYTHON={python313}')
  assert_refused(box, result, '3.13')
  assert f'PYTHON={python313} is Python 3.13.1' in result.stderr


def test_python_given_that_does_not_exist_is_refused(box):
  result = box.make('test', 'PYTHON=/nonexistent/python3.11')
  assert_refused(box, result, '/nonexistent/python3.11')


def test_no_python_at_all_is_refused(box):
  result = box.make('test')
  assert_refused(box, result, 'no python3.11 on PATH')


def test_python3_that_is_311_makes_the_venv_and_the_recipe_runs(box):
  python3 = box.python('python3', '3.11.9')
  shown = box.make('python')
  assert shown.returncode == 0, shown.stderr
  assert shown.stdout.strip() == python3
  result = box.make('test')
  assert result.returncode == 0, result.stderr
  run = [c for c in box.calls() if ' -c ' not in c]
  assert run[0] == f'{python3} -m venv .venv'
  assert re.match(r'\.venv/bin/python -m pip install .*-r requirements\.lock$', run[1])
  assert re.match(r'\.venv/bin/python -m pip install .*--no-deps -e \.$', run[2])
  # The suite's three phases: unit and cluster tests two at a time, the
  # end-to-end ones two at a time (a test file's tests on one worker: its
  # shared run once), then the emulated hosts alone.
  parallel = '.venv/bin/python -m pytest -q tests -n 2 --dist loadfile'
  assert run[3].startswith(f'{parallel} -m unit or cluster')
  assert run[4].startswith(f'{parallel} -m e2e')
  assert run[5].startswith('.venv/bin/python -m pytest -q tests -m hosts')
  assert len(run) == 6


def test_python311_on_path_is_preferred_to_python3(box):
  box.python('python3', '3.12.3')
  python311 = box.python('python3.11', '3.11.9')
  result = box.make('python')
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == python311


def test_a_python311_that_is_not_311_falls_back_to_python3(box):
  # e.g. a pyenv shim for a version that is not installed
  box.python('python3.11', '3.10.4')
  python3 = box.python('python3', '3.11.2')
  result = box.make('python')
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == python3


def test_python_given_that_is_311_is_used(box):
  box.python('python3', '3.12.3')
  mine = box.python('python', '3.11.4', where=os.path.join(box.root, 'opt'))
  result = box.make('test', f'PYTHON={mine}')
  assert result.returncode == 0, result.stderr
  assert f'{mine} -m venv .venv' in box.calls()


def test_an_existing_311_venv_is_reused_without_looking_further(box):
  box.python('python3', '3.12.3')  # would be refused if it were asked to make one
  box.python('python', '3.11.9', where=os.path.join(box.work, '.venv', 'bin'))
  result = box.make('test')
  assert result.returncode == 0, result.stderr
  assert not any('-m venv' in c for c in box.calls())
  assert any(c.startswith('.venv/bin/python -m pytest') for c in box.calls())


def test_an_existing_venv_of_another_python_is_refused_with_one_line(box):
  box.python('python', '3.12.3', where=os.path.join(box.work, '.venv', 'bin'))
  result = box.make('test')
  assert result.returncode != 0
  lines = result.stderr.splitlines()
  assert len(lines) == 1, result.stderr
  assert '.venv/bin/python is Python 3.12.3' in lines[0] and '3.11' in lines[0]
  assert 'make clean' in lines[0]
  assert not any(' -m ' in c for c in box.calls())


def test_clean_needs_no_python(box):
  result = box.make('clean')
  assert result.returncode == 0, result.stderr
  assert box.calls() == []


def test_the_makefile_names_the_pinned_versions_and_setup_pys_python():
  makefile = open(os.path.join(REPO, 'Makefile')).read()
  needed = re.search(r'^PYTHON_NEEDED := (\S+)$', makefile, re.M).group(1)
  setup = open(os.path.join(REPO, 'setup.py')).read()
  assert f"python_requires='>={needed},<" in setup
  lock = dict(line.split('==') for line in
              open(os.path.join(REPO, 'requirements.lock')).read().split()
              if '==' in line)
  why = re.search(r'^PYTHON_WHY := (.*)$', makefile, re.M).group(1)
  assert f"TensorFlow {lock['tensorflow']}" in why
  assert f"dm-reverb {lock['dm-reverb']}" in why
  assert f'CPython {needed} only' in why
