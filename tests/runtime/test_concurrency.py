"""Two learners applying to one ps variable at once: the fused update rules
(learner.fused_update, the default) lose no update; the written-out ones do.
On a real in-process cluster (1 ps, 2 workers), 800 overlapping applies of
one gradient against the same applies made one after another
(tests/runtime/concurrency_harness.py).

Measured (2026-12-04, this 2-core machine): the fused kernels (locked) give
every slot and the variable bit for bit as the serial applies; so did fused
ApplyAdam with use_locking=False here, but TensorFlow leaves unlocked
concurrent applies undefined, so it locks as the RMSProp kernel always did.
The written-out rules read and write the slots in separate ops, so two
applies can interleave: Adam lost 1.4-19 % of its slot updates in different
runs here, and none in one CI run (RMSProp's variable was off by 1.2e-4
there), and in one fresh-clone run RMSProp's variable came out NaN: its
denominator ms - mg^2 is ~0 under a constant gradient, and an apply that
read one slot after another apply's write and the other before it made it
negative. It is a race, so it is reported, not asserted. That the measure sees
a lost update is checked on a planted one (the serial reference makes one
apply more). A tf.CriticalSection per variable made them exact in this harness but
deadlocked the learner's closure on the 2-ps cluster, so they stay unlocked
and the chief warns when they are used with several learners.
"""

import json
import os
import subprocess
import sys

import pytest

HARNESS = os.path.join(os.path.dirname(__file__), 'concurrency_harness.py')


@pytest.fixture(scope='module')
def result():
  proc = subprocess.run([sys.executable, HARNESS, 'unlocked'],
                        capture_output=True, text=True, timeout=600)
  lines = [l for l in proc.stdout.splitlines() if l.startswith('RESULT ')]
  assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
  return json.loads(lines[-1][len('RESULT '):])


@pytest.mark.parametrize('arm', ['adam fused', 'rmsprop fused',
                                 'adam fused unlocked'])
def test_concurrent_fused_applies_lose_no_update(result, arm):
  outcome = result[arm]
  assert outcome['iterations'] == outcome['applies'] == 800
  assert outcome['variable_error'] < 1e-6, outcome
  assert outcome['slot_error'] < 1e-6, outcome


def test_the_measure_sees_one_lost_update_in_800(result):
  # What the test sees when updates are lost, planted: the serial reference
  # made one apply more than the cluster. Measured 7.9e-4 (variable) and
  # 8.1e-4 (slots), so the fused arms' 1e-6 bound leaves it no room.
  outcome = result['adam fused, 1 update lost (planted)']
  assert outcome['applies'] == outcome['iterations'] + 1 == 801
  assert outcome['variable_error'] > 1e-4, outcome
  assert outcome['slot_error'] > 1e-4, outcome


@pytest.mark.parametrize('arm', ['adam written_out', 'rmsprop written_out'])
def test_concurrent_written_out_applies_all_run(result, arm):
  # What they do to the variable is a race (see the module's docstring), so
  # it is reported, not asserted: every apply ran and counted its step.
  outcome = result[arm]
  print(arm, outcome)
  assert outcome['iterations'] == outcome['applies'] == 800
