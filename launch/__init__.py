"""Launch topologies: the local launcher and cluster manifests.

Installed as `gorila_tf.launch` (see setup.py).
"""

import sys
from typing import Sequence


def local_command(config: str, run_dir: str, overrides: Sequence[str] = (),
                  *launcher_flags: str) -> list[str]:
  """The argv that runs the local launcher on a preset, its overrides last.

  For tools that start whole local clusters (suite, bench); kept here, free
  of flag definitions, so they need not import launch/local.py.
  """
  return [sys.executable, '-m', 'gorila_tf.launch.local', f'--config={config}',
          f'--run_dir={run_dir}', *launcher_flags,
          *[f'--set={o}' for o in overrides]]
