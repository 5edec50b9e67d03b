"""The tree keeps its seams: no module reaches into another's private names.

What one module uses of another is public (no leading underscore) and
documented; roles do not depend on the tools built around them. Checked
statically with `ast` over every module of the package, the presets, the
launchers and the tests.
"""

import ast
import glob
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

SOURCES = ('gorila_tf/**/*.py', 'configs/**/*.py', 'launch/**/*.py',
           'tests/**/*.py')
# The standard library's own underscore names are its business (os._exit,
# sys._getframe); namedtuples' public API is spelled with an underscore.
STDLIB = frozenset(sys.stdlib_module_names)
NAMEDTUPLE_API = frozenset({'_asdict', '_replace', '_fields', '_make',
                            '_field_defaults'})
# Another project's private names, read because it offers no public one.
THIRD_PARTY_PRIVATES = {
    # Stable-Baselines3 counts gradient updates only in `_n_updates`; the peer
    # runs in its own virtualenv, outside gorila_tf.
    'gorila_tf/lab/peers/sb3_dqn.py': {'model._n_updates',
                                         'self.model._n_updates'},
}


def is_private(name: str) -> bool:
  """'_x' is private; '__x__' (a dunder) and 'x' are not."""
  dunder = name.startswith('__') and name.endswith('__')
  return name.startswith('_') and not dunder


def imported_names(tree: ast.AST) -> dict[str, str]:
  """Local name -> the dotted name it was imported as."""
  names = {}
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        if alias.asname:
          names[alias.asname] = alias.name
        else:
          top = alias.name.split('.')[0]
          names[top] = top
    elif isinstance(node, ast.ImportFrom):
      for alias in node.names:
        names[alias.asname or alias.name] = f'{node.module or ""}.{alias.name}'
  return names


def private_uses(source: str, path: str = '<source>') -> list[str]:
  """Every use of another module's private name in `source`, one line each.

  Flags `from x import _y`, `module._y` for an imported module (the standard
  library excepted), and `obj._y` on anything but `self`, `cls` or `super()`:
  whose private `_y` is, is not known statically, so all such reaching in is
  refused.
  """
  tree = ast.parse(source, path)
  imported = imported_names(tree)
  problems = []
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom):
      for alias in node.names:
        if is_private(alias.name):
          problems.append(f'{path}:{node.lineno}: from {node.module} import '
                          f'{alias.name}')
    if not (isinstance(node, ast.Attribute) and is_private(node.attr)
            and node.attr not in NAMEDTUPLE_API):
      continue
    owner = node.value
    if isinstance(owner, ast.Name):
      if owner.id in ('self', 'cls'):
        continue
      if imported.get(owner.id, '').split('.')[0] in STDLIB:
        continue
    if (isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name)
        and owner.func.id == 'super'):
      continue
    problems.append(f'{path}:{node.lineno}: {ast.unparse(owner)}.{node.attr}')
  return problems


def source_files() -> list[str]:
  return sorted(os.path.relpath(p, REPO) for pattern in SOURCES
                for p in glob.glob(os.path.join(REPO, pattern), recursive=True))


def read(path: str) -> str:
  with open(os.path.join(REPO, path)) as f:
    return f.read()


@pytest.mark.parametrize('source, expected', [
    ('from gorila_tf.runtime.model import _secret\n',
     ['<planted>:1: from gorila_tf.runtime.model import _secret']),
    ('from gorila_tf import chief\nchief._helper()\n',
     ['<planted>:2: chief._helper']),
    ('import gorila_tf.runtime.chief as chief_lib\nx = chief_lib._helper\n',
     ['<planted>:2: chief_lib._helper']),
    ('def f(chief):\n  return chief._coordinator\n',
     ['<planted>:2: chief._coordinator']),
    ('class A:\n  def f(self):\n    return self._model._slots\n',
     ['<planted>:3: self._model._slots']),
])
def test_the_checker_finds_planted_private_uses(source, expected):
  assert private_uses(source, '<planted>') == expected


def test_the_checker_allows_own_privates_dunders_and_the_standard_library():
  source = '''
import os
import subprocess
import sys
from typing import NamedTuple

_TABLE = {}


class Point(NamedTuple):
  x: int

  def moved(self):
    return self._replace(x=self.x + 1)._asdict()


class A(object):
  def __init__(self):
    super().__init__()
    self._private = _TABLE
    self.name = type(self).__name__

  @classmethod
  def make(cls):
    return cls._build()

frame = sys._getframe()
os._exit(0)
'''
  assert private_uses(source) == []


def test_no_module_uses_another_modules_private_names():
  files = source_files()
  assert 'gorila_tf/runtime/chief.py' in files and 'tests/runtime/cluster_harness.py' in files
  problems = [p for path in files for p in private_uses(read(path), path)
              if p.split(': ', 1)[1] not in THIRD_PARTY_PRIVATES.get(path, ())]
  assert not problems, 'private names used across modules:\n' + '\n'.join(problems)


def forbidden_imports(path: str, source: str, forbidden: tuple[str, ...]) -> list[str]:
  """'<path>: <module>' for every import in `source` of a module under `forbidden`."""
  return [f'{path}: {name}' for name in imported_names(ast.parse(source)).values()
          if name.startswith(forbidden)]


def imports_outside(prefix: str, forbidden: tuple[str, ...]) -> list[str]:
  """`forbidden_imports` of every source file whose path starts with `prefix`."""
  return [line for p in source_files() if p.startswith(prefix)
          for line in forbidden_imports(p, read(p), forbidden)]


def test_the_boundary_checker_sees_a_planted_import():
  source = 'import os\nfrom gorila_tf.runtime import chief\nfrom gorila_tf import config\n'
  assert forbidden_imports('gorila_tf/agent/planted.py', source,
                           ('gorila_tf.runtime',)) == [
                               'gorila_tf/agent/planted.py: gorila_tf.runtime.chief']


def test_the_agent_imports_nothing_of_the_runtime_or_the_tools():
  files = [p for p in source_files() if p.startswith('gorila_tf/agent/')]
  assert 'gorila_tf/agent/learner.py' in files and len(files) <= 9  # 8 + __init__
  assert imports_outside('gorila_tf/agent/', (
      'gorila_tf.runtime', 'gorila_tf.tools', 'gorila_tf.lab',
      'gorila_tf.launch')) == []


def test_roles_and_shared_pieces_do_not_depend_on_the_tools_or_the_lab():
  for prefix in ('gorila_tf/agent/', 'gorila_tf/runtime/', 'gorila_tf/config',
                 'gorila_tf/train', 'gorila_tf/exit_codes'):
    assert imports_outside(prefix, ('gorila_tf.tools', 'gorila_tf.lab')) == []


def top_level_flag_definitions(source: str) -> list[str]:
  """`flags.DEFINE_*` calls made when the module is imported."""
  return [ast.unparse(node.value.func) for node in ast.parse(source).body
          if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
          and ast.unparse(node.value.func).startswith('flags.DEFINE')]


def test_the_flag_checker_finds_a_planted_top_level_definition():
  assert top_level_flag_definitions(
      "flags.DEFINE_string('out', None, 'x')\n"
      "def define_flags():\n  flags.DEFINE_string('run_dir', None, 'y')\n"
  ) == ['flags.DEFINE_string']


def test_commands_define_their_flags_only_when_they_run():
  # Commands share flag names (--config, --out, --run_dir): defined at import,
  # two of them in one process (a test session, a tool using another) would
  # raise DuplicateFlagError.
  files = [p for p in source_files() if not p.startswith('tests/')]
  offenders = [p for p in files if top_level_flag_definitions(read(p))]
  assert not offenders, offenders
  commands = [p[:-3].replace('/', '.') for p in files
              if 'def define_flags' in read(p)]
  assert len(commands) >= 9, commands
  commands = [c.replace('launch.', 'gorila_tf.launch.', 1)
              if c.startswith('launch.') else c for c in commands]
  result = subprocess.run(
      [sys.executable, '-c', 'import ' + ', '.join(commands)],
      cwd=REPO, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
