"""After --max_wall_s the launcher stops training, then asks the evaluator
for the last checkpoint's score and waits for it (launch/local.py), with
stand-in processes for the tasks; the real run is in test_e2e.py."""

import os
import signal
import subprocess
import sys
import threading
import time

from gorila_tf.launch import local
from gorila_tf.runtime import run_dir as run_dir_lib

# Each stand-in writes "<what> <time>" to its file when signalled.
CHIEF = '''
import signal, sys, time
def stop(*_):
  open(sys.argv[1], 'w').write(f'stopped {time.time()}'); sys.exit(0)
signal.signal(signal.SIGTERM, stop)
time.sleep(60)
'''
EVALUATOR = '''
import signal, sys, time
final = []
signal.signal(signal.SIGUSR2, lambda *_: final.append(time.time()))
while not final and sys.argv[2] == 'scores':
  time.sleep(0.05)
if final:
  open(sys.argv[1], 'w').write(f'asked {final[0]}')
time.sleep(0.3 if final else 60)
'''


class StandIn:
  """What the launcher uses of a TaskProcess, around a small script."""

  def __init__(self, task_type, script, *args):
    self.task_type = self.role = task_type
    self.process = subprocess.Popen([sys.executable, '-c', script, *args],
                                    start_new_session=True)

  def poll(self):
    return self.process.poll()

  def signal(self, signum):
    if self.process.poll() is None:
      os.killpg(self.process.pid, signum)

  def kill_and_wait(self):
    self.signal(signal.SIGKILL)
    self.process.wait()

  def close(self):
    pass


def test_training_stops_before_the_evaluator_is_asked_and_waited_for(tmp_path):
  assert run_dir_lib.FINAL_EVALUATION_SIGNAL not in (signal.SIGUSR1, signal.SIGTERM)
  chief = StandIn('chief', CHIEF, str(tmp_path / 'chief'))
  evaluator = StandIn('evaluator', EVALUATOR, str(tmp_path / 'evaluator'), 'scores')
  time.sleep(1.0)  # both have their handlers
  local.evaluate_last_checkpoint([chief, evaluator], threading.Event())
  assert chief.poll() == 0 and evaluator.poll() == 0
  stopped = float((tmp_path / 'chief').read_text().split()[1])
  asked = float((tmp_path / 'evaluator').read_text().split()[1])
  assert stopped < asked


def test_ctrl_c_skips_the_wait_for_the_final_evaluation(tmp_path):
  evaluator = StandIn('evaluator', EVALUATOR, str(tmp_path / 'evaluator'), 'hangs')
  time.sleep(1.0)
  stop = threading.Event()
  threading.Timer(1.0, stop.set).start()
  started = time.monotonic()
  local.evaluate_last_checkpoint([evaluator], stop)
  assert time.monotonic() - started < 5 and evaluator.poll() is None
  evaluator.kill_and_wait()


def test_without_an_evaluator_nothing_is_stopped_early():
  chief = StandIn('chief', CHIEF, os.devnull)
  local.evaluate_last_checkpoint([chief], threading.Event())
  assert chief.poll() is None
  chief.kill_and_wait()


IGNORES_SIGTERM = '''
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
time.sleep(60)
'''


def test_a_task_still_running_after_its_grace_is_killed_and_said(monkeypatch):
  monkeypatch.setattr(local, 'STOP_GRACE_S', 1.0)
  said = []
  monkeypatch.setattr(local, 'say', said.append)
  chief = StandIn('chief', CHIEF, os.devnull)
  worker = StandIn('worker', IGNORES_SIGTERM)
  time.sleep(1.0)  # both have their handlers
  local.stop_all([chief, worker])
  assert chief.poll() == 0 and worker.poll() == -signal.SIGKILL
  out = '\n'.join(said)
  assert 'worker was still running 1 s after SIGTERM; killed' in out
  assert 'chief was still running' not in out  # it stopped on its SIGTERM
