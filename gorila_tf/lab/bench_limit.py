r"""The machine's limit: the fastest correct one-process DQN update here.

  python -m gorila_tf.lab.bench --sections=limit --config=pong_fast --out=limit.json

For each compute dtype (`network.compute_dtype`: float32, and bfloat16 on
float32 parameters, targets, loss and optimizer) and each batch size, the
one-process learner round of runtime/single.py (the update the distributed
learner makes, sampling a real Reverb table of Pong transitions) runs alone
in a fresh process for `--seconds`: updates/s and samples/s (updates x
batch). A short second child runs a few updates with ONEDNN_VERBOSE=1 and
names the oneDNN kernels that executed the convolutions and matrix
products, so a reader can see whether bfloat16 kernels ran (a CPU without
AVX-512 BF16 gets float32 kernels through reorders, and is slower).
"""

from __future__ import annotations

import collections
import os
import re
import sys
import tempfile
from typing import Any, Callable, Sequence

from gorila_tf import config as config_lib
from gorila_tf.runtime import processes

DTYPES = ('float32', 'bfloat16')
BATCHES = (32, 64, 128)
VERBOSE_UPDATES = 8  # updates traced with ONEDNN_VERBOSE (after a warm-up)


def _overrides(overrides: Sequence[str], dtype: str, batch: int) -> list[str]:
  return [*overrides, f'network.compute_dtype={dtype}',
          f'learner.batch_size={batch}']


def _rate(config_name: str, overrides: list[str], seconds: float,
          learner_rate: Callable, queue) -> None:
  """Updates/s of the one-process learner round (a child's work)."""
  learner_rate(config_lib.resolve(config_name, overrides), seconds, queue)


def _kernels(config_name: str, overrides: list[str], prefilled_replay: Callable,
             queue) -> None:
  """The oneDNN primitives a few updates executed, counted by kind and
  implementation (a child's work: ONEDNN_VERBOSE is read at start-up)."""
  log = tempfile.NamedTemporaryFile(prefix='onednn-', suffix='.log', delete=False)
  stdout = os.dup(1)
  os.dup2(log.fileno(), 1)  # oneDNN writes its lines to stdout
  os.environ['ONEDNN_VERBOSE'] = '1'
  try:
    from gorila_tf.agent import environments  # pylint: disable=g-import-not-at-top
    from gorila_tf.runtime import single  # pylint: disable=g-import-not-at-top
    config = config_lib.resolve(config_name, overrides)
    agent = single.SingleProcessAgent(config)
    server = prefilled_replay(config, environments.env_info(config.env), 500)
    train = agent.make_training(f'localhost:{server.port}')
    train()  # traced; its kernels are the same as every later round's
    sys.stdout.flush()
    log.truncate(0)
    os.lseek(1, 0, os.SEEK_SET)
    for _ in range(max(1, VERBOSE_UPDATES // config.learner.steps_per_closure)):
      train()
    sys.stdout.flush()
  finally:
    os.dup2(stdout, 1)
  with open(log.name) as f:
    counts = count_kernels(f)
  os.unlink(log.name)
  queue.put({'kernels': counts})


_EXEC = re.compile(r'onednn_verbose,(?:[^,]*,)?exec,cpu,([^,]+),([^,]+),'
                   r'[^,]*,([^,]*)')


def count_kernels(lines) -> dict[str, int]:
  """{'<primitive> <implementation> <data types>': executions} of the
  convolutions, inner products and matrix products in an ONEDNN_VERBOSE log."""
  counts: collections.Counter = collections.Counter()
  for line in lines:
    m = _EXEC.search(line)
    if not m:
      continue
    primitive, implementation, types = m.groups()
    if primitive in ('convolution', 'inner_product', 'matmul'):
      # 'src_bf16::blocked:acdb::f0 wei_bf16:...': each memory's data type
      dtypes = sorted({t.split(':')[0].rsplit('_', 1)[-1]
                       for t in types.split() if '_' in t.split(':')[0]})
      counts[f'{primitive} {implementation} {"/".join(dtypes)}'] += 1
  return dict(counts.most_common())


def measure(config_name: str, overrides: Sequence[str], seconds: float,
            learner_rate: Callable, prefilled_replay: Callable,
            batches: Sequence[int] = BATCHES,
            dtypes: Sequence[str] = DTYPES) -> dict[str, Any]:
  """One row per (dtype, batch): updates/s, samples/s; and each dtype's
  oneDNN kernels at the first batch size.

  `learner_rate(config, seconds, queue)` puts the one-process learner's
  {'updates_per_s'}; `prefilled_replay(config, info, transitions)` is a
  Reverb server holding real transitions (both bench.py's, module-level so
  that a spawned child can run them).
  """
  rows, kernels = [], {}
  for dtype in dtypes:
    for batch in batches:
      got = processes.in_child(_rate, config_name,
                               _overrides(overrides, dtype, batch), seconds,
                               learner_rate)
      rate = got.get('updates_per_s')
      rows.append({'compute_dtype': dtype, 'batch_size': batch,
                   'updates_per_s': rate,
                   'samples_per_s': rate * batch if rate else None,
                   **({'error': got['error']} if 'error' in got else {})})
    kernels[dtype] = processes.in_child(
        _kernels, config_name, _overrides(overrides, dtype, batches[0]),
        prefilled_replay).get('kernels')
  best = {}
  for row in rows:
    if row['updates_per_s']:
      key = row['batch_size']
      best.setdefault(key, {})[row['compute_dtype']] = row['updates_per_s']
  speedups = {f'bfloat16_over_float32_batch_{b}': r['bfloat16'] / r['float32']
              for b, r in best.items() if {'bfloat16', 'float32'} <= set(r)}
  return {'rows': rows, 'speedups': speedups, 'kernels': kernels,
          'seconds': seconds}


def table(results: dict[str, Any]) -> str:
  lines = ['[limit] the one-process DQN update (runtime/single.py) alone',
           f'  {"compute":<10} {"batch":>5} {"updates/s":>10} {"samples/s":>10}']
  for row in results['rows']:
    rate = row['updates_per_s']
    lines.append(f'  {row["compute_dtype"]:<10} {row["batch_size"]:>5} '
                 + (f'{rate:>10.1f} {row["samples_per_s"]:>10,.0f}' if rate
                    else f'{"-":>10} {"-":>10}  {row.get("error", "")}'))
  for key, value in results['speedups'].items():
    lines.append(f'  {key:<40} {value:.2f}')
  for dtype, counts in results['kernels'].items():
    lines.append(f'  oneDNN kernels, {dtype}:')
    for kernel, n in (counts or {}).items():
      lines.append(f'    {n:>5}  {kernel}')
  return '\n'.join(lines)
