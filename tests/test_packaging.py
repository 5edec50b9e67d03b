"""The install story: setup.py agrees with the lock file, BUILD covers every file."""

import ast
import glob
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO


def lock_versions():
  versions = {}
  with open(os.path.join(REPO, 'requirements.lock')) as f:
    for line in f:
      line = line.split('#')[0].strip()
      if line:
        name, _, version = line.partition('==')
        versions[name.lower().replace('_', '-')] = version
  return versions


def setup_requirements():
  tree = ast.parse(open(os.path.join(REPO, 'setup.py')).read())
  for node in ast.walk(tree):
    if isinstance(node, ast.Assign) and node.targets[0].id == 'INSTALL_REQUIRES':
      return [ast.literal_eval(e) for e in node.value.elts]
  raise AssertionError('INSTALL_REQUIRES not found in setup.py')


def test_every_runtime_requirement_is_locked_at_an_allowed_version():
  from packaging.specifiers import SpecifierSet  # pylint: disable=g-import-not-at-top
  locked = lock_versions()
  for requirement in setup_requirements():
    name, spec = re.match(r'([A-Za-z0-9_.\-]+)(.*)', requirement).groups()
    name = name.lower().replace('_', '-')
    assert name in locked, f'{name} is required by setup.py but not locked'
    assert locked[name] in SpecifierSet(spec), (
        f'{name}=={locked[name]} in requirements.lock is outside {spec!r}')


def test_the_pinned_stack_is_the_one_checked_together():
  locked = lock_versions()
  assert locked['tensorflow'] == '2.15.1'
  assert locked['dm-reverb'] == '0.14.0'
  assert locked['tf-agents'] == '0.19.0'
  assert locked['tensorflow-probability'] == '0.23.0'
  assert locked['numpy'].startswith('1.')


def build_sources():
  text = open(os.path.join(REPO, 'BUILD')).read()
  return set(re.findall(r'"([\w/]+\.py)"', text))


def test_every_module_and_test_file_has_a_bazel_target():
  sources = build_sources()
  files = [os.path.relpath(p, REPO) for pattern in
           ('gorila_tf/*.py', 'gorila_tf/*/*.py', 'configs/*.py', 'launch/*.py',
            'tests/*.py', 'tests/*/*.py')
           for p in glob.glob(os.path.join(REPO, pattern))]
  missing = sorted(f for f in files if f not in sources)
  assert not missing, f'files without a BUILD target: {missing}'
  stale = sorted(s for s in sources if not os.path.exists(os.path.join(REPO, s)))
  assert not stale, f'BUILD names files that do not exist: {stale}'


def test_every_test_module_is_a_py_test_target():
  text = open(os.path.join(REPO, 'BUILD')).read()
  for path in glob.glob(os.path.join(REPO, 'tests', '**', 'test_*.py'),
                        recursive=True):
    name = os.path.splitext(os.path.basename(path))[0]
    assert re.search(rf'py_test\(\s*name = "{name}"', text), name


@pytest.mark.skipif(shutil.which('bazel') is None,
                    reason="needs bazel on PATH (Debian's bazel-bootstrap)")
def test_bazel_query_lists_every_target_offline():
  proc = subprocess.run(['bazel', 'query', '//...'], cwd=REPO, capture_output=True,
                        text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  listed = {line.strip() for line in proc.stdout.splitlines() if line.strip()}
  names = re.findall(r'^\s+name = "(\w+)"', open(os.path.join(REPO, 'BUILD')).read(),
                     re.M)
  assert listed == {f'//:{name}' for name in names}


def build_targets() -> dict[str, dict]:
  """name -> {'srcs': [...], 'deps': [...]} of every py_* target in BUILD."""
  text = open(os.path.join(REPO, 'BUILD')).read()
  targets = {}
  for block in re.findall(r'^py_\w+\(\n(.*?)^\)', text, re.M | re.S):
    name = re.search(r'name = "(\w+)"', block).group(1)
    srcs = re.findall(r'"([\w/]+\.py)"', block.split('deps =')[0])
    deps_text = block.split('deps =', 1)[1] if 'deps =' in block else ''
    data_text = block.split('data =', 1)[1].split('deps =')[0] if 'data =' in block else ''
    targets[name] = {'srcs': srcs, 'deps': set(re.findall(r'":(\w+)"', deps_text))
                     | set(re.findall(r'":(\w+)"', data_text))}
  return targets


def module_of(path: str) -> str:
  """'gorila_tf/agent/dqn.py' -> 'gorila_tf.agent.dqn' (configs/ and launch/
  install as gorila_tf.configs and gorila_tf.launch)."""
  module = path[:-3].replace('/', '.').removesuffix('.__init__')
  if module.startswith(('configs', 'launch')):
    module = 'gorila_tf.' + module
  return module


def test_every_target_depends_on_the_targets_of_what_it_imports():
  targets = build_targets()
  owner = {module_of(src): name for name, t in targets.items() for src in t['srcs']}
  problems = []
  for name, target in targets.items():
    for src in target['srcs']:
      tree = ast.parse(open(os.path.join(REPO, src)).read())
      imported = set()
      for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith('gorila_tf'):
          for alias in node.names:
            full = f'{node.module}.{alias.name}'
            imported.add(full if full in owner else node.module)
        elif isinstance(node, ast.Import):
          imported.update(a.name for a in node.names if a.name.startswith('gorila_tf'))
      for module in sorted(imported):
        needed = owner.get(module)
        if needed and needed != name and needed not in target['deps']:
          problems.append(f'{name} ({src}) imports {module}: add ":{needed}"')
  assert not problems, '\n'.join(problems)


@pytest.mark.parametrize('given,seen', [(None, '1'), ('0', '0')])
def test_importing_the_package_turns_onednn_on_unless_told_otherwise(given, seen):
  # TensorFlow runs oneDNN's kernels by default only on AVX-512 CPUs; on an
  # AVX2 one Eigen's made the update 1.5x slower (gorila_tf/__init__.py).
  env = {k: v for k, v in os.environ.items() if k != 'TF_ENABLE_ONEDNN_OPTS'}
  if given is not None:
    env['TF_ENABLE_ONEDNN_OPTS'] = given
  env['ONEDNN_VERBOSE'] = '1'  # oneDNN says each primitive it runs
  out = subprocess.run(
      [sys.executable, '-c', 'import os, gorila_tf, tensorflow as tf; '
       'tf.nn.conv2d(tf.ones([1, 8, 8, 4]), tf.ones([3, 3, 4, 8]), 1, "VALID"); '
       'print("OPTS", os.environ["TF_ENABLE_ONEDNN_OPTS"])'],
      env=env, capture_output=True, text=True, check=True, cwd=REPO)
  assert f'OPTS {seen}' in out.stdout
  # A real convolution ran on oneDNN's kernels, or (told otherwise) did not.
  ran = re.search(r'onednn_verbose,.*exec,cpu,convolution', out.stdout)
  assert bool(ran) == (seen == '1'), out.stdout[-2000:]
