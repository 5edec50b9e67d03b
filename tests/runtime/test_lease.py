"""A run directory has one owner: the chief's lease, on files alone.

Unit tests run the lease with a fake clock whose sleep can play the other
owner's heartbeat; the end-to-end tests start real launchers on one run
directory.
"""

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import types

import pytest

from gorila_tf import config as config_lib
from gorila_tf import errors
from gorila_tf import exit_codes
from gorila_tf.runtime import evaluator
from gorila_tf.runtime import lease
from tests.conftest import REPO
from tests.launch.test_e2e import TRAINING, Launcher, alive, checkpoint_counters

TIMEOUT_S = 20.0  # the fake clock's lease timeout; renewals every 5 s


class FakeClock(lease.Clock):
  """Monotonic and wall time that move only when someone sleeps."""

  def __init__(self, on_sleep=None):
    self.now = 0.0
    self.on_sleep = on_sleep  # called after each sleep: the other owner's life

  def monotonic(self):
    return self.now

  def time(self):
    return 1_764_000_000.0 + self.now  # 2025-11-24 16:00:00 UTC + now

  def sleep(self, seconds):
    self.now += seconds
    if self.on_sleep:
      self.on_sleep()


def make_lease(run_dir, clock, token=None, host='h1', pid=111, **kwargs):
  return lease.Lease(str(run_dir), TIMEOUT_S, token=token, clock=clock,
                     host=host, pid=pid, **kwargs)


def on_disk(run_dir):
  with open(lease.lease_path(str(run_dir))) as f:
    return json.load(f)


def test_a_free_run_directory_is_taken_at_once_with_its_owner_written_down(tmp_path):
  clock = FakeClock()
  owner = make_lease(tmp_path / 'run', clock, token='a' * 32)
  owner.acquire()
  assert clock.now == 0.0  # nothing watched, nothing waited for
  assert on_disk(tmp_path / 'run') == {
      'host': 'h1', 'pid': 111, 'token': 'a' * 32, 'beat': 0,
      'started_at': clock.time(), 'heartbeat_at': clock.time(),
      # where pid 111 runs: this machine's boot and pid namespace (no such
      # process: start 0)
      'boot_id': lease.this_machine().boot_id,
      'pid_ns': lease.this_machine().pid_ns, 'pid_start': 0}
  assert owner.taken_from is None


def test_each_renewal_advances_the_beat_and_keeps_the_token(tmp_path):
  clock = FakeClock()
  owner = make_lease(tmp_path, clock)
  owner.acquire()
  clock.now += 5
  assert owner.renew() and owner.renew()
  held = on_disk(tmp_path)
  assert (held['beat'], held['token']) == (2, owner.token)
  assert held['heartbeat_at'] == clock.time() > held['started_at']
  assert [p for p in os.listdir(tmp_path) if p != 'LEASE'] == []  # no litter


def test_release_deletes_the_lease_only_while_it_is_ours(tmp_path):
  clock = FakeClock()
  first = make_lease(tmp_path, clock)
  first.acquire()
  first.release()
  assert lease.read(str(tmp_path)) is None
  second = make_lease(tmp_path, clock, host='h2')
  second.acquire()
  first.release()  # a stale owner's release leaves the new owner's lease
  assert lease.read(str(tmp_path)).host == 'h2'


def test_release_removes_the_run_directory_it_made_while_nothing_else_is_in_it(
    tmp_path):
  clock = FakeClock()
  refused_early = make_lease(tmp_path / 'new', clock)
  refused_early.acquire()
  refused_early.release()  # e.g. a ps not reachable: the run wrote nothing
  assert not (tmp_path / 'new').exists()
  trained = make_lease(tmp_path / 'used', clock)
  trained.acquire()
  (tmp_path / 'used' / 'config.json').write_text('{}')
  trained.release()
  assert os.listdir(tmp_path / 'used') == ['config.json']
  (tmp_path / 'given').mkdir()
  given = make_lease(tmp_path / 'given', clock)
  given.acquire()
  given.release()
  assert (tmp_path / 'given').is_dir()  # the user's directory stays


def test_a_live_lease_is_refused_with_one_line_naming_its_owner_and_since_when(
    tmp_path):
  owner = make_lease(tmp_path, FakeClock())
  owner.acquire()
  before = on_disk(tmp_path)
  # The owner renews every 5 s of the second chief's watching.
  clock = FakeClock(on_sleep=lambda: clock.now % 5 < 0.5 and owner.renew())
  second = make_lease(tmp_path, clock, host='h2', pid=222)
  with pytest.raises(errors.LeaseHeld) as refused:
    second.acquire()
  message = str(refused.value)
  assert '\n' not in message
  assert 'held by the chief on host h1, pid 111, since 2025-11-24 16:00:00 UTC' in message
  assert 'run.lease_timeout_s=20 s' in message
  assert clock.now <= 5.5  # recognised within one renewal period
  assert on_disk(tmp_path)['token'] == before['token']


def test_an_owner_renewing_late_but_within_the_timeout_is_still_live(tmp_path):
  owner = make_lease(tmp_path, FakeClock())
  owner.acquire()
  renewed = []

  def late_heartbeat():
    if clock.now >= TIMEOUT_S - 1 and not renewed:
      renewed.append(owner.renew())

  clock = FakeClock(on_sleep=late_heartbeat)
  with pytest.raises(errors.LeaseHeld):
    make_lease(tmp_path, clock, host='h2').acquire()
  assert renewed == [True]


def test_a_lease_unchanged_for_the_timeout_is_taken_over_with_a_warning(
    tmp_path, caplog):
  dead = make_lease(tmp_path, FakeClock())
  dead.acquire()  # and never renewed: a SIGKILLed chief
  clock = FakeClock()
  heir = make_lease(tmp_path, clock, host='h2', pid=222)
  heir.acquire()
  assert TIMEOUT_S <= clock.now <= TIMEOUT_S + 1
  assert on_disk(tmp_path)['token'] == heir.token
  assert (heir.taken_from.host, heir.taken_from.pid) == ('h1', 111)
  assert re.search(r'taken over from the chief on host h1, pid 111, since '
                   r'2025-11-24 16:00:00 UTC, whose heartbeat stopped', caplog.text)


def test_a_chief_of_the_same_launch_resumes_its_predecessors_lease_at_once(tmp_path):
  clock = FakeClock()
  make_lease(tmp_path, clock, token='t' * 32).acquire()  # then SIGKILLed
  restarted = make_lease(tmp_path, clock, token='t' * 32, pid=333)
  restarted.acquire()
  assert clock.now == 0.0
  assert restarted.taken_from.pid == 111
  assert on_disk(tmp_path)['pid'] == 333


def test_an_owner_whose_lease_was_taken_over_finds_out_at_its_next_renewal(tmp_path):
  lost = []
  paused = make_lease(tmp_path, FakeClock(), on_lost=lost.append)
  paused.acquire()
  heir = make_lease(tmp_path, FakeClock(), host='h2')
  heir.acquire()  # paused did not renew for the whole timeout
  assert paused.renew() is False
  assert [h.host for h in lost] == ['h2']
  assert on_disk(tmp_path)['token'] == heir.token  # and it wrote nothing


def test_a_takeover_marker_left_by_a_dead_chief_is_cleared_after_another_timeout(
    tmp_path):
  dead = make_lease(tmp_path, FakeClock())
  dead.acquire()
  stale = open(lease.lease_path(str(tmp_path)), 'rb').read()
  marker = tmp_path / f'LEASE.takeover-{hashlib.sha256(stale).hexdigest()[:16]}'
  marker.touch()  # a chief died between marking and replacing
  clock = FakeClock()
  heir = make_lease(tmp_path, clock, host='h2')
  heir.acquire()
  assert clock.now >= 3 * TIMEOUT_S  # stale, marked; stale again; taken
  assert on_disk(tmp_path)['token'] == heir.token
  assert not marker.exists()


def test_of_two_chiefs_taking_over_one_stale_lease_one_wins_the_other_is_refused(
    tmp_path):
  make_lease(tmp_path, lease.SYSTEM_CLOCK).acquire()  # a dead owner
  results = {}

  def take(host):
    chief = lease.Lease(str(tmp_path), 1.0, host=host, poll_s=0.02)
    try:
      chief.acquire()
      chief.start_heartbeat()
      results[host] = chief
    except errors.LeaseHeld as e:
      results[host] = str(e)

  threads = [threading.Thread(target=take, args=(h,)) for h in ('h2', 'h3')]
  for t in threads:
    t.start()
  for t in threads:
    t.join(timeout=30)
  winners = [h for h, r in results.items() if isinstance(r, lease.Lease)]
  assert len(winners) == 1, results
  loser = next(r for r in results.values() if isinstance(r, str))
  assert f'held by the chief on host {winners[0]}' in loser
  assert lease.read(str(tmp_path)).host == winners[0]
  results[winners[0]].release()


def test_the_heartbeat_thread_renews_and_release_stops_it(tmp_path):
  owner = lease.Lease(str(tmp_path), 0.4)  # renews every 0.1 s
  owner.acquire()
  owner.start_heartbeat()
  time.sleep(0.6)
  assert on_disk(tmp_path)['beat'] >= 3
  owner.release()
  assert lease.read(str(tmp_path)) is None
  time.sleep(0.3)
  assert lease.read(str(tmp_path)) is None  # no renewal after the release


def test_check_free_writes_nothing_and_refuses_only_a_live_lease(tmp_path):
  missing = tmp_path / 'not-yet'
  assert lease.check_free(str(missing), TIMEOUT_S, FakeClock()).state == 'free'
  assert not missing.exists()
  owner = make_lease(tmp_path, FakeClock())
  owner.acquire()
  clock = FakeClock()  # the owner is silent: not refused, left to the chief
  seen = lease.check_free(str(tmp_path), TIMEOUT_S, clock)
  assert seen.state == 'stale' and seen.holder.pid == 111
  # Watched for two renewal periods (5 s each), not the whole timeout.
  assert clock.now <= 2 * lease.renew_period(TIMEOUT_S) + lease.POLL_S < TIMEOUT_S
  clock = FakeClock(on_sleep=lambda: clock.now % 5 < 0.5 and owner.renew())
  with pytest.raises(errors.LeaseHeld, match='host h1, pid 111'):
    lease.check_free(str(tmp_path), TIMEOUT_S, clock)
  assert os.listdir(tmp_path) == ['LEASE']


def test_a_tenant_writes_only_while_its_chiefs_lease_advances(tmp_path):
  clock = FakeClock()  # the tenant's; each chief below has a clock of its own
  tenant = lease.Tenant(str(tmp_path), TIMEOUT_S, token='t' * 32, clock=clock)
  assert not tenant.owner_live() and tenant.released()
  make_lease(tmp_path, FakeClock(), token='o' * 32).acquire()  # a dead launch's
  assert not tenant.owner_live()  # not our chief's: wait
  ours = make_lease(tmp_path, FakeClock(), token='t' * 32, host='h2')
  ours.acquire()  # our chief takes the stale lease over
  clock.now += 1
  assert tenant.owner_live()  # our chief's, and it changed a second ago
  clock.now += TIMEOUT_S
  assert not tenant.owner_live()  # unchanged for the timeout
  ours.renew()
  clock.now += 1
  assert tenant.owner_live()
  make_lease(tmp_path, FakeClock(), token='o' * 32, host='h3').acquire()
  with pytest.raises(errors.LeaseHeld, match='now belongs to the chief on host h3'):
    tenant.owner_live()


def test_a_stopped_launchs_evaluator_writes_unless_another_launch_holds_the_run(
    tmp_path, monkeypatch):
  # After --max_wall_s the launcher stopped our chief (it may have been killed
  # before it released its lease) and asked for the final evaluation.
  monkeypatch.setattr(evaluator, 'LEASE_POLL_S', 0.0)
  clock = FakeClock()
  tenant = lease.Tenant(str(tmp_path), TIMEOUT_S, token='t' * 32, clock=clock)
  stopped = threading.Event()
  stopped.set()
  evaluator.wait_for_lease(tenant, str(tmp_path), stopped)  # no lease: ours
  make_lease(tmp_path, FakeClock(), token='t' * 32).acquire()
  assert tenant.owner_live()  # our chief's, just taken
  clock.now += TIMEOUT_S + 1  # and then killed: left stale
  assert not tenant.owner_live() and not tenant.held_by_another_launch()
  evaluator.wait_for_lease(tenant, str(tmp_path), stopped)
  make_lease(tmp_path, FakeClock(), token='o' * 32, host='h3').acquire()
  assert tenant.held_by_another_launch()
  with pytest.raises(errors.LeaseHeld, match='now belongs to the chief on host h3'):
    evaluator.wait_for_lease(tenant, str(tmp_path), stopped)
  # Without a launch token nothing tells launches apart.
  assert not lease.Tenant(str(tmp_path), TIMEOUT_S, token='').held_by_another_launch()


def test_the_timeout_is_a_config_field_with_bounds():
  assert config_lib.RunConfig().lease_timeout_s == 60.0
  assert config_lib.resolve('cartpole', ['run.lease_timeout_s=4']).run.lease_timeout_s == 4
  with pytest.raises(errors.ConfigError, match=r'run.lease_timeout_s=1.0 is out '
                     r'of range; allowed: in \[2, 3600\] seconds'):
    config_lib.resolve('cartpole', ['run.lease_timeout_s=1'])


# --- Real launchers on one run directory --------------------------------------


def files_of(run_dir, *names):
  """sha256 of each file under the named parts of the run directory."""
  digests = {}
  for name in names:
    top = os.path.join(run_dir, name)
    paths = ([top] if os.path.isfile(top) else
             [os.path.join(d, f) for d, _, fs in os.walk(top) for f in fs])
    for path in paths:
      with open(path, 'rb') as f:
        digests[os.path.relpath(path, run_dir)] = hashlib.sha256(f.read()).hexdigest()
  return digests


# One run directory and four launches, shared by the checks below: a short
# run to checkpoint, its resume (A) training with no checkpoint due, a second
# launch refused beside it, then A killed with SIGKILL (its lease stays) and
# a third launch (B) that takes the lease over at once and resumes; then B's
# chief paused (SIGSTOP) past the lease timeout, a fourth launch (C) that
# takes the lease over from it, and B's chief woken up (SIGCONT).
LEASE_S = '--set=run.lease_timeout_s=5'


def _owner(pid):
  return rf'the chief on host \S+, pid {pid}, since [\d-]+ [\d:]+ UTC'


@pytest.fixture(scope='module')
def one_run_directory(tmp_path_factory):
  run_dir = str(tmp_path_factory.mktemp('lease') / 'run')
  at = re.escape(run_dir)
  s = types.SimpleNamespace(run_dir=run_dir)
  s.done = subprocess.run(
      [sys.executable, '-m', 'gorila_tf.launch.local', '--config=cartpole',
       f'--run_dir={run_dir}', '--set=run.max_frames=3000', '--progress=off',
       '--max_wall_s=300'], cwd=REPO, capture_output=True, text=True, timeout=400)
  if s.done.returncode != 0:
    return s
  s.saved = checkpoint_counters(run_dir)
  a = Launcher(run_dir, '--set=run.max_frames=10000000', LEASE_S,
               '--set=run.checkpoint_every_s=3600', '--progress=off')
  try:
    a.wait_for(TRAINING)
    s.a_chief, s.owner = a.pids()['chief'], lease.read(run_dir)
    s.files_before = files_of(run_dir, *KEPT)
    s.logs_before = sorted(os.listdir(os.path.join(run_dir, 'logs')))
    s.second = subprocess.run(
        [sys.executable, '-m', 'gorila_tf.launch.local', '--config=cartpole',
         f'--run_dir={run_dir}', LEASE_S], cwd=REPO, capture_output=True,
        text=True, timeout=120)
    s.files_after = files_of(run_dir, *KEPT)
    s.logs_after = sorted(os.listdir(os.path.join(run_dir, 'logs')))
    s.owner_after = lease.read(run_dir)
    s.a_trains_on = a.proc.poll() is None
    a.proc.kill()  # its tasks die with it (PR_SET_PDEATHSIG); the lease stays
    a.finish(timeout=60)
    deadline = time.monotonic() + 30
    while alive(s.a_chief) and time.monotonic() < deadline:
      time.sleep(0.2)
    s.a_chief_alive = alive(s.a_chief)
    s.lease_left = lease.read(run_dir)
    # B: a checkpoint due every 2 s, so that one is due when it wakes up.
    b = Launcher(run_dir, '--set=run.max_frames=10000000', LEASE_S,
                 '--set=run.checkpoint_every_s=2', '--progress=off')
    exited = (rf'the run directory {at} is held by {_owner(s.a_chief)}, which '
              r'has exited \(no such process on this machine now\): its lease '
              'is taken over at once')
    s.b_told = b.wait_for(rf'\[launcher\] {exited}')
    s.b_took = b.wait_for(rf'\[chief\] W.* lease: {exited}')
    s.resumed = b.wait_for(r'resumed from \S+ckpt-(\d+) at (\d+) updates')
    b.wait_for(TRAINING, after=len(b.lines))
    s.b_chief = b.pids()['chief']
    s.b_owns = lease.read(run_dir).pid == s.b_chief
    os.kill(s.b_chief, signal.SIGSTOP)  # a chief paused: alive, not renewing
    c = Launcher(run_dir, '--set=run.max_frames=10000000', LEASE_S,
                 '--progress=off')
    paused = _owner(s.b_chief)
    s.watched = c.wait_for(rf'\[launcher\] the run directory {at} is held by '
                           rf'{paused}; watching it for up to 5 s')
    s.taken = c.wait_for(rf'\[chief\] W.* lease of {at}: taken over from '
                         rf'{paused}, whose heartbeat stopped \(unchanged for '
                         r'run.lease_timeout_s=5 s')
    c.wait_for(TRAINING, after=len(c.lines))
    s.c_chief = c.pids()['chief']
    s.c_owns = lease.read(run_dir).pid == s.c_chief
    woken = len(b.lines)
    os.kill(s.b_chief, signal.SIGCONT)
    s.b_code, _ = b.finish(timeout=60)
    s.b_after = ''.join(b.lines[woken:])
    s.c_trains_on = c.proc.poll() is None
    c.proc.send_signal(signal.SIGTERM)
    s.c_code, s.c_out = c.finish(timeout=180)
    s.lease_at_end = lease.read(run_dir)
    return s
  finally:
    Launcher.stop_all()


KEPT = ('checkpoints', 'replay', 'config.json', 'model_signature.json')


def checkpointed(s):
  assert s.done.returncode == 0, s.done.stdout[-3000:]


@pytest.mark.e2e
def test_a_second_launch_on_a_training_run_directory_is_refused_and_writes_nothing(
    one_run_directory):
  s = one_run_directory
  checkpointed(s)
  assert s.owner.pid == s.a_chief
  assert any(k.startswith('checkpoints/ckpt-') for k in s.files_before)
  assert s.second.returncode == exit_codes.BAD_INPUT
  assert s.second.stdout == ''
  errors_ = [l for l in s.second.stderr.splitlines() if l.startswith('error:')]
  owner = s.owner
  assert errors_ == [
      f'error: run directory {s.run_dir} is in use: its lease is held by the '
      f'chief on host {owner.host}, pid {owner.pid}, since '
      f'{lease.utc(owner.started_at)}, and its heartbeat is advancing; stop '
      'that run or use another --run_dir (a lease whose heartbeat stops is '
      'taken over after run.lease_timeout_s=5 s)'], s.second.stderr[-2000:]
  assert s.files_after == s.files_before
  assert s.logs_after == s.logs_before
  assert s.owner_after.token == owner.token
  assert s.a_trains_on  # the first run trained on


@pytest.mark.e2e
def test_a_lease_left_by_a_sigkilled_chief_on_this_machine_is_taken_over_at_once(
    one_run_directory):
  s = one_run_directory
  checkpointed(s)
  assert not s.a_chief_alive and s.lease_left.pid == s.a_chief
  assert s.b_told and s.b_took  # said, in this order, by launcher and chief
  # The take-over continues the run from its checkpoint.
  assert int(s.resumed.group(2)) >= s.saved['updates'] > 0
  assert s.b_owns


@pytest.mark.e2e
def test_a_chief_paused_past_the_timeout_loses_its_lease_and_stops_without_writing(
    one_run_directory):
  s = one_run_directory
  checkpointed(s)
  assert s.watched and s.taken  # said, in this order, by launcher and chief
  assert s.c_owns
  # Woken up, the paused chief finds the lease lost before it writes again
  # (a checkpoint was due), and its launcher does not restart it.
  assert re.search(rf'\[chief\] E.* lease of \S+ lost to {_owner(s.c_chief)}',
                   s.b_after), s.b_after[-3000:]
  assert not re.search(r'\[chief\] I.*\] checkpoint \S+ckpt-\d+ \(', s.b_after)
  assert s.b_code == exit_codes.BAD_INPUT, s.b_after[-3000:]
  assert s.c_trains_on
  assert s.c_code == exit_codes.INTERRUPTED, s.c_out[-3000:]
  assert s.lease_at_end is None  # released on the way out


def test_an_empty_lease_is_taken_over_after_two_renewal_periods_saying_why(
    tmp_path, caplog):
  # What a chief that died between creating LEASE and writing it, or a full
  # disk, leaves: no owner can be named, and a live one would have written
  # a whole lease within one renewal period.
  (tmp_path / 'LEASE').write_bytes(b'')
  clock = FakeClock()
  owner = make_lease(tmp_path, clock)
  owner.acquire()
  assert clock.now <= 2 * lease.renew_period(TIMEOUT_S) + 2 * lease.POLL_S < TIMEOUT_S
  assert on_disk(tmp_path)['pid'] == 111
  assert (f'the run directory {tmp_path} is not free: its LEASE is empty or '
          'unreadable') in caplog.text
  assert 'watching it for up to 10.5 s' in caplog.text
  assert 'taken over; its LEASE is empty or unreadable' in caplog.text


def test_a_readable_stale_lease_is_watched_for_the_whole_timeout_saying_whose(
    tmp_path, caplog):
  dead = make_lease(tmp_path, FakeClock(), pid=222)
  dead.acquire()
  clock = FakeClock()
  make_lease(tmp_path, clock).acquire()
  assert clock.now >= TIMEOUT_S
  assert 'is held by the chief on host h1, pid 222' in caplog.text
  assert f'watching it for up to {TIMEOUT_S:g} s' in caplog.text


# An owner on this machine: the kernel says at once whether it still runs.


@pytest.fixture
def child():
  """A real process on this machine, standing in for a chief."""
  proc = subprocess.Popen(['sleep', '60'])
  yield proc
  proc.kill()
  proc.wait()


def owned_by(run_dir, owner, **fields):
  """The lease a chief of process `owner` on this machine wrote, then left;
  `fields` overwrite what it wrote (another boot, an older version)."""
  make_lease(run_dir, FakeClock(), host=socket.gethostname(), pid=owner).acquire()
  written = {**on_disk(run_dir), **fields}
  (run_dir / 'LEASE').write_text(json.dumps(
      {k: v for k, v in written.items() if v is not None}))


def test_a_lease_whose_owner_exited_on_this_machine_is_taken_over_at_once(
    tmp_path, child, caplog):
  owned_by(tmp_path, child.pid)
  assert on_disk(tmp_path)['pid_start'] > 0 and on_disk(tmp_path)['boot_id']
  child.kill()
  child.wait()  # reaped: the pid is free
  clock = FakeClock()
  heir = make_lease(tmp_path, clock, pid=222)
  heir.acquire()
  assert clock.now == 0.0  # not watched
  assert heir.taken_from.pid == child.pid
  assert on_disk(tmp_path)['token'] == heir.token
  assert re.search(rf'is held by the chief on host \S+, pid {child.pid}, since '
                   r'.* UTC, which has exited \(no such process on this machine '
                   r'now\): its lease is taken over at once', caplog.text)


def test_a_killed_owner_not_yet_reaped_has_exited_too(tmp_path, child):
  owned_by(tmp_path, child.pid)
  child.kill()
  deadline = time.monotonic() + 10
  while lease.process_state(child.pid)[0] != 'Z' and time.monotonic() < deadline:
    time.sleep(0.01)  # a zombie: exited, its parent (this test) not waiting yet
  clock = FakeClock()
  make_lease(tmp_path, clock, pid=222).acquire()
  assert clock.now == 0.0


def test_a_pid_reused_by_a_later_process_is_not_the_owner(tmp_path, child):
  # The lease names a live pid whose process started at another time.
  owned_by(tmp_path, child.pid, pid_start=lease.process_state(child.pid)[1] + 1)
  clock = FakeClock()
  make_lease(tmp_path, clock, pid=222).acquire()
  assert clock.now == 0.0


@pytest.mark.parametrize('why, fields', [
    ('its process still runs (paused, or its heartbeat thread stuck)', {}),
    ('written in another boot', {'boot_id': 'another-boot'}),
    ('written in another pid namespace', {'pid_ns': 'pid:[1]'}),
    ('written on another host', {'host': 'another-host'}),
    ('written before these fields', {'boot_id': None, 'pid_ns': None,
                                     'pid_start': None}),
    ('naming no process (edited by hand)', {'pid': 0}),
])
def test_a_lease_of_an_owner_not_known_to_have_exited_is_watched_for_the_timeout(
    tmp_path, child, why, fields):
  owned_by(tmp_path, child.pid, **fields)
  if why != 'its process still runs (paused, or its heartbeat thread stuck)':
    child.kill()
    child.wait()  # gone, but its pid means nothing to this machine's kernel
  assert lease.read(str(tmp_path)).pid == fields.get('pid', child.pid)
  assert lease.check_free(str(tmp_path), TIMEOUT_S, FakeClock()).state == 'stale'
  clock = FakeClock()
  make_lease(tmp_path, clock, pid=222).acquire()
  assert clock.now >= TIMEOUT_S, why


def test_the_launcher_leaves_an_exited_owners_lease_to_its_chief_at_once(
    tmp_path, child):
  owned_by(tmp_path, child.pid)
  child.kill()
  child.wait()
  clock = FakeClock()
  seen = lease.check_free(str(tmp_path), TIMEOUT_S, clock)
  assert (seen.state, seen.holder.pid, clock.now) == ('exited', child.pid, 0.0)
  assert lease.launcher_line(str(tmp_path), seen, TIMEOUT_S).endswith(
      'which has exited (no such process on this machine now): its lease is '
      'taken over at once')
  assert on_disk(tmp_path)['pid'] == child.pid  # it wrote nothing


def test_a_lease_with_fields_of_a_later_version_is_still_read(tmp_path):
  make_lease(tmp_path, FakeClock()).acquire()
  (tmp_path / 'LEASE').write_text(json.dumps({**on_disk(tmp_path), 'new': 1}))
  assert lease.read(str(tmp_path)).pid == 111


def test_a_chief_confirms_its_lease_before_writing_and_stops_once_it_lost_it(
    tmp_path):
  lost = []
  paused = make_lease(tmp_path, FakeClock(), on_lost=lost.append)
  paused.acquire()
  assert paused.confirm() and lost == []
  heir = make_lease(tmp_path, FakeClock(), host='h2')
  heir.acquire()  # paused slept through the timeout; it wakes up to write
  assert paused.confirm() is False
  assert [h.host for h in lost] == ['h2']
  assert on_disk(tmp_path)['token'] == heir.token  # confirming wrote nothing
