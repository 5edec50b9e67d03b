"""Run-directory ownership: the chief's lease on its run directory.

One chief at a time writes a run directory. Before it writes anything, the
chief takes the directory's lease, a small JSON file

    <run_dir>/LEASE   {"host", "pid", "token", "started_at", "heartbeat_at", "beat",
                       "boot_id", "pid_ns", "pid_start"}

renews it from a daemon thread while it runs, and deletes it on exit. The
owner's loop:

    acquire:
      create LEASE exclusively (O_CREAT | O_EXCL), re-read it: our token -> ours
      LEASE exists and carries our launch's token (GORILA_LEASE_TOKEN): it is
        our launch's previous chief, which the launcher restarts only once it
        has exited -> take it over at once
      its owner ran on this machine (same host, boot and pid namespace) and
        its process is gone (no such pid, a zombie, or a pid reused by a
        later process)                -> take it over at once, warn
      else watch it with our own monotonic clock:
        its content changes               -> a live owner: refuse (errors.LeaseHeld)
        unchanged for `timeout_s`         -> a dead owner: take it over, warn
    every `renew_every_s` (timeout / 4, at most 5 s):
      re-read; still our token -> write beat + 1 (temporary file + rename)
      another token              -> lost: `on_lost` (the chief stops at once)
    exit: re-read; still our token -> delete

Why these primitives: the run directory may be shared between machines over
a network file system, where flock/fcntl locks cannot be trusted (they are
local-only on `nolock`/`local_lock` mounts, depend on lockd on NFSv3, and a
dead client's lock can outlive it).
  * O_CREAT | O_EXCL is atomic at the server on NFSv3 and later: of two chiefs
    creating LEASE at once, one gets EEXIST.
  * Renewals write a temporary file and rename it over LEASE (atomic), so a
    reader sees the old lease or the new one, never half of one. The owner
    re-reads LEASE before each renewal: a token not its own means it lost it.
  * Every check re-opens LEASE: NFS close-to-open consistency (the default;
    not `nocto`) makes each open see the newest version.

Clock skew: liveness is judged by watching the lease's content advance (its
`beat` counter changes at every renewal) over `timeout_s` of the watcher's
own monotonic clock. No timestamp written on one machine is ever compared
with another machine's clock: `heartbeat_at` against the watcher's
`time.time()` is off by the skew between the two (a 2-minute skew makes a
live owner look dead, or a dead one live), and the file's mtime is the file
server's clock (or, on some mounts, the writing client's), which would need
the server's "now" from a probe file to compare against. The price: a lease
is called stale only after watching it for the whole timeout, while a live
one shows itself within one renewal period. `started_at` and `heartbeat_at`
are the owner's clock, for people to read.

An owner on this machine needs no watching: the kernel says whether its
process still exists. `boot_id` (random per boot) tells this boot of this
machine from any other, `pid_ns` the pid namespace its pid means something
in, and `pid_start` (the process's start time in clock ticks since boot)
tells it from a later process given the same pid. A relaunch after a crash
on one machine, the common case, so starts at once instead of after
`timeout_s`; a lease written on another machine, another boot or another
pid namespace (a container) is watched as before.

Two chiefs taking over the same stale lease: each first creates
`LEASE.takeover-<digest of the stale content>` exclusively; only the one that
did replaces the lease, the other watches again and finds the winner's lease
live. A marker left by a chief that died in between is removed when the
stale lease is found unchanged for a further timeout.

`run.lease_timeout_s` (default 60 s) must exceed the longest pause a live
chief's heartbeat thread can have (a stalled file server, a suspended VM). A
chief paused for longer may find at its next renewal that another chief has
taken the lease; it then stops without writing (exit status 2).

Readers write nothing: the launcher's `check_free` refuses a live lease
before it creates `logs/`; the evaluator's `Tenant` writes only while its
chief's lease is live (or after the chief finished and released it). Workers
write into the run directory only replay checkpoints, and only when the
chief, holding the lease, asks their Reverb servers for one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import socket
import threading
import time
from typing import Callable, Literal, NamedTuple, Optional

from absl import logging

from gorila_tf import errors
from gorila_tf import exit_codes

LEASE_FILE = 'LEASE'
# Set by the local launcher for every task of one launch: a restarted chief of
# the same launch resumes the lease at once, and its evaluator follows it.
TOKEN_ENV = 'GORILA_LEASE_TOKEN'
POLL_S = 0.5  # seconds between reads while watching a lease


class Clock:
  """Time as the lease sees it; tests pass a fake one."""

  def monotonic(self) -> float:
    return time.monotonic()

  def time(self) -> float:
    return time.time()

  def sleep(self, seconds: float) -> None:
    time.sleep(seconds)


SYSTEM_CLOCK = Clock()


@dataclasses.dataclass(frozen=True)
class Holder:
  """What a lease says about its owner."""

  host: str
  pid: int
  token: str
  started_at: float  # the owner's wall clock, seconds since the epoch
  heartbeat_at: float  # the owner's wall clock at its last renewal
  beat: int  # renewals so far: what watchers see advance
  # Where its process runs, to tell at once that it exited (empty in leases
  # written before these fields: watched for the timeout as any other).
  boot_id: str = ''  # /proc/sys/kernel/random/boot_id of its machine
  pid_ns: str = ''  # its pid namespace, e.g. 'pid:[4026531836]'
  pid_start: int = 0  # its start time, clock ticks since boot (0: unknown)

  def describe(self) -> str:
    return f'host {self.host}, pid {self.pid}, since {utc(self.started_at)}'


def utc(seconds: float) -> str:
  return time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(seconds))


def renew_period(timeout_s: float) -> float:
  """Seconds between renewals: several per timeout, at most 5."""
  return min(5.0, timeout_s / 4)


def lease_path(run_dir: str) -> str:
  return os.path.join(run_dir, LEASE_FILE)


def read(run_dir: str) -> Optional[Holder]:
  """The lease's holder; None if there is no lease or it cannot be parsed."""
  return _parse(_read_raw(lease_path(run_dir)))


def _read_raw(path: str) -> Optional[bytes]:
  try:
    with open(path, 'rb') as f:
      return f.read()
  except (FileNotFoundError, NotADirectoryError):
    return None


_HOLDER_FIELDS = frozenset(f.name for f in dataclasses.fields(Holder))


def _parse(raw: Optional[bytes]) -> Optional[Holder]:
  if not raw:
    return None
  try:
    fields = json.loads(raw)
    # Fields a later version adds are left out, not a reason to call the
    # lease unreadable (which would shorten the watch for a live owner).
    return Holder(**{k: v for k, v in fields.items() if k in _HOLDER_FIELDS})
  except (ValueError, TypeError, AttributeError):
    return None  # being written by an exclusive create, or not ours to read


class Process(NamedTuple):
  """Where a process runs and when it started, as its lease records it."""

  boot_id: str
  pid_ns: str
  start: int  # clock ticks since boot; 0 when unknown


def _read_text(path: str) -> str:
  try:
    with open(path) as f:
      return f.read().strip()
  except OSError:
    return ''


def process_state(pid: int) -> Optional[tuple[str, int]]:
  """(state, start time in ticks) of a process of this pid namespace, or
  None if there is none."""
  text = _read_text(f'/proc/{pid}/stat')
  if not text:
    return None
  # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
  fields = text[text.rfind(')') + 2:].split()
  try:
    return fields[0], int(fields[19])
  except (IndexError, ValueError):
    return None


def this_machine() -> Process:
  """This process's boot and pid namespace (start 0: for comparing machines)."""
  try:
    pid_ns = os.readlink('/proc/self/ns/pid')
  except OSError:
    pid_ns = ''
  return Process(_read_text('/proc/sys/kernel/random/boot_id'), pid_ns, 0)


def process_of(pid: int) -> Process:
  """Where process `pid` of this machine runs, and since when."""
  stat = process_state(pid)
  return this_machine()._replace(start=stat[1] if stat else 0)


def exited(holder: Optional[Holder]) -> bool:
  """True when the lease's owner ran on this machine and its process is gone.

  Only a lease that names this host, this boot and this pid namespace
  qualifies; the process is gone when its pid is free, a zombie (it has
  exited; its parent has not reaped it yet), or held by a process started
  at another time than the owner (the pid was reused). Anything unknown is
  False: such a lease is watched for the timeout.
  """
  if (holder is None or not holder.boot_id or not holder.pid_ns
      or not isinstance(holder.pid, int) or holder.pid <= 0):
    return False  # (a pid of 0 or a string: a lease edited by hand)
  here = this_machine()
  if (holder.host, holder.boot_id, holder.pid_ns) != (
      socket.gethostname(), here.boot_id, here.pid_ns):
    return False
  stat = process_state(holder.pid)
  if stat is None:
    return True
  state, start = stat
  return state in ('Z', 'X') or bool(holder.pid_start and start != holder.pid_start)


def _describe(holder: Optional[Holder]) -> str:
  return holder.describe() if holder else 'an owner whose lease is unreadable'


UNREADABLE = ('its LEASE is empty or unreadable (what a chief that died while '
              'writing it, or a full disk, leaves behind)')


def stale_after_s(raw: Optional[bytes], timeout_s: float) -> float:
  """How long a lease must stay unchanged to be called stale.

  A readable lease: `timeout_s` (its owner may be paused, not dead). An empty
  or unreadable one: two renewal periods, since a live owner writes a whole
  lease within one of creating it and at every renewal.
  """
  if _parse(raw) is not None:
    return timeout_s
  return min(timeout_s, 2 * renew_period(timeout_s) + POLL_S)


def waiting_line(run_dir: str, raw: Optional[bytes], timeout_s: float) -> str:
  """What a chief or launcher says while it watches another's lease."""
  holder = _parse(raw)
  whose = (f'is held by the chief on {holder.describe()}' if holder
           else f'is not free: {UNREADABLE}')
  return (f'the run directory {run_dir} {whose}; watching it for up to '
          f'{stale_after_s(raw, timeout_s):g} s: a live chief renews it every '
          f'{renew_period(timeout_s):g} s and is left alone, an unchanged one is '
          'taken over')


def exited_line(run_dir: str, holder: Holder) -> str:
  """What a chief or launcher says when the lease's owner has exited."""
  return (f'the run directory {run_dir} is held by the chief on '
          f'{holder.describe()}, which has exited (no such process on this '
          'machine now): its lease is taken over at once')


def launcher_line(run_dir: str, seen: 'Observation', timeout_s: float) -> str:
  """What the launcher says about a lease it left to its chief."""
  if seen.state == 'exited':
    return exited_line(run_dir, seen.holder)
  return waiting_line(run_dir, seen.raw, timeout_s)


class Observation(NamedTuple):
  """What watching a lease showed."""

  state: Literal['free', 'live', 'stale', 'exited']
  raw: Optional[bytes]  # the content it last had (None when free)
  holder: Optional[Holder]


def watch(path: str, timeout_s: float, clock: Clock = SYSTEM_CLOCK,
          poll_s: float = POLL_S) -> Observation:
  """Re-reads the lease until its content changes or `timeout_s` passes.

  Returns:
    'free' if it is (or becomes) absent; 'live' as soon as its content
    changes (its owner renewed it); 'stale' if it stayed the same for
    `timeout_s` of this process's monotonic clock.
  """
  first = _read_raw(path)
  if first is None:
    return Observation('free', None, None)
  start = clock.monotonic()
  while clock.monotonic() - start < timeout_s:
    clock.sleep(poll_s)
    now = _read_raw(path)
    if now is None:
      return Observation('free', None, None)
    if now != first:
      return Observation('live', now, _parse(now))
  return Observation('stale', first, _parse(first))


def refusal(run_dir: str, holder: Optional[Holder], timeout_s: float) -> str:
  """The one line that refuses a second chief."""
  return (f'run directory {run_dir} is in use: its lease is held by the chief '
          f'on {_describe(holder)}, and its heartbeat is advancing; stop that '
          f'run or use another --run_dir (a lease whose heartbeat stops is '
          f'taken over after run.lease_timeout_s={timeout_s:g} s)')


def check_free(run_dir: str, timeout_s: float, clock: Clock = SYSTEM_CLOCK,
               poll_s: float = POLL_S) -> Optional[Holder]:
  """Raises errors.LeaseHeld if a live chief holds `run_dir`'s lease. Writes nothing.

  For the launcher, before it creates anything in the run directory. It
  watches an existing lease for two renewal periods, not the whole timeout:
  a live owner renews within one. A lease that does not advance in that time
  is left to the chief, which takes it over once it has not advanced for
  `timeout_s`.

  A lease whose owner ran on this machine and has exited (`exited`) is not
  watched at all.

  Returns:
    The observation (state 'free', 'stale' or 'exited': the content it kept).
  """
  raw = _read_raw(lease_path(run_dir))
  holder = _parse(raw)
  if exited(holder):
    return Observation('exited', raw, holder)
  window = min(timeout_s, 2 * renew_period(timeout_s) + poll_s)
  seen = watch(lease_path(run_dir), window, clock, poll_s)
  if seen.state == 'live':
    raise errors.LeaseHeld(refusal(run_dir, seen.holder, timeout_s))
  return seen


class Lease:
  """The chief's lease on one run directory (see the module docstring)."""

  def __init__(self, run_dir: str, timeout_s: float, token: Optional[str] = None,
               clock: Clock = SYSTEM_CLOCK, poll_s: float = POLL_S,
               on_lost: Optional[Callable[[Optional[Holder]], None]] = None,
               host: Optional[str] = None, pid: Optional[int] = None):
    """A lease not yet acquired.

    Args:
      run_dir: the run directory (created if missing).
      timeout_s: a lease unchanged this long belongs to a dead owner.
      token: the owner token; one launch's chiefs share it (TOKEN_ENV).
        Default: a new random one.
      clock: monotonic time, wall time and sleep (tests pass a fake one).
      poll_s: seconds between reads while watching another owner's lease.
      on_lost: called from the heartbeat thread, with the new holder, when
        the lease turns out to be someone else's.
      host, pid: who this owner says it is (default: this process).
    """
    self.run_dir = run_dir
    self.path = lease_path(run_dir)
    self.timeout_s = timeout_s
    self.renew_every_s = renew_period(timeout_s)
    self.token = token or secrets.token_hex(16)
    self.taken_from: Optional[Holder] = None  # the previous owner, if any
    self._clock = clock
    self._poll_s = poll_s
    self._on_lost = on_lost
    self._host = host or socket.gethostname()
    self._pid = pid or os.getpid()
    self._process = process_of(self._pid)
    self._started_at = clock.time()
    self._beat = 0
    self._markers_seen: dict[str, int] = {}
    self._stop = threading.Event()
    self._thread: Optional[threading.Thread] = None
    self._made_run_dir = False  # removed again on release if still empty

  def holder(self) -> Holder:
    return Holder(host=self._host, pid=self._pid, token=self.token,
                  started_at=self._started_at,
                  heartbeat_at=self._clock.time(), beat=self._beat,
                  boot_id=self._process.boot_id, pid_ns=self._process.pid_ns,
                  pid_start=self._process.start)

  def acquire(self) -> None:
    """Takes the lease, or raises errors.LeaseHeld naming its live owner.

    Raises:
      errors.LeaseHeld: a live chief holds it.
      ConfigError: the run directory cannot be written.
    """
    try:
      if not os.path.isdir(self.run_dir):
        os.makedirs(self.run_dir, exist_ok=True)
        self._made_run_dir = True
      while not self._try_acquire():
        pass
    except OSError as e:
      raise errors.ConfigError(
          f'cannot take the lease of run directory {self.run_dir!r}: '
          f'{e.strerror or e}') from None
    self._verify()

  def _try_acquire(self) -> bool:
    """One attempt: True once the lease is ours, False to try again."""
    if self._create():
      return True
    previous = _parse(_read_raw(self.path))
    if previous is not None and previous.token == self.token:
      self._replace()
      self.taken_from = previous
      logging.info('lease of %s: resumed from the previous chief of this '
                   'launch (%s)', self.run_dir, previous.describe())
      return True
    raw = _read_raw(self.path)
    previous = _parse(raw)
    if exited(previous) and self._take_over(raw, dead_marker_check=False):
      self.taken_from = previous
      logging.warning('lease: %s', exited_line(self.run_dir, previous))
      return True
    # (Replaced meanwhile, or another chief is taking it over: watched.)
    logging.warning('lease: %s', waiting_line(self.run_dir, raw, self.timeout_s))
    seen = watch(self.path, stale_after_s(raw, self.timeout_s), self._clock,
                 self._poll_s)
    if seen.state == 'live':
      raise errors.LeaseHeld(refusal(self.run_dir, seen.holder, self.timeout_s))
    if seen.state == 'stale' and self._take_over(seen.raw):
      self.taken_from = seen.holder
      if seen.holder is None:
        logging.warning('lease of %s: taken over; %s and it stayed so for '
                        '%g s', self.run_dir, UNREADABLE,
                        stale_after_s(seen.raw, self.timeout_s))
      else:
        logging.warning(
            'lease of %s: taken over from the chief on %s, whose heartbeat '
            'stopped (unchanged for run.lease_timeout_s=%g s; last heartbeat '
            '%s by its clock)', self.run_dir, seen.holder.describe(),
            self.timeout_s, utc(seen.holder.heartbeat_at))
      return True
    return False

  def _create(self) -> bool:
    """Creates the lease exclusively; False if one exists."""
    try:
      fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      return False
    with os.fdopen(fd, 'wb') as f:
      f.write(self._content())
      f.flush()
      os.fsync(f.fileno())
    return True

  def _take_over(self, stale: bytes, dead_marker_check: bool = True) -> bool:
    """Replaces the stale lease unless another chief is doing so.

    `dead_marker_check`: count a marker found as seen after a watch (two
    such, a whole timeout apart, are a dead chief's); False where no watch
    came before (an exited owner's lease), so only watches count.
    """
    marker = f'{self.path}.takeover-{hashlib.sha256(stale).hexdigest()[:16]}'
    try:
      os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
      if not dead_marker_check:
        return False
      # Another chief is taking it over, or died doing so: after a second
      # full timeout with the lease unchanged, the marker is a dead one's.
      self._markers_seen[marker] = self._markers_seen.get(marker, 0) + 1
      if self._markers_seen[marker] >= 2:
        _remove(marker)
      return False
    try:
      if _read_raw(self.path) != stale:
        return False  # renewed or replaced meanwhile: watch it again
      self._replace()
      return True
    finally:
      _remove(marker)

  def _verify(self) -> None:
    """Re-reads the lease: raises errors.LeaseHeld if another writer won."""
    holder = _parse(_read_raw(self.path))
    if holder is None or holder.token != self.token:
      raise errors.LeaseHeld(refusal(self.run_dir, holder, self.timeout_s))

  def _content(self) -> bytes:
    return json.dumps(dataclasses.asdict(self.holder()), sort_keys=True).encode()

  def _replace(self) -> None:
    """Writes our lease to a temporary file and renames it over LEASE."""
    tmp = f'{self.path}.{self.token[:16]}.tmp'
    with open(tmp, 'wb') as f:
      f.write(self._content())
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, self.path)

  def renew(self) -> bool:
    """One heartbeat. False (after `on_lost`) if the lease is not ours now."""
    raw = _read_raw(self.path)
    if raw is None:
      # Deleted under us (by hand?): ours again only if nobody recreated it.
      self._beat += 1
      if self._create():
        logging.warning('lease of %s was deleted while held; recreated',
                        self.run_dir)
        return True
      raw = _read_raw(self.path)
    if not self._still_ours(raw):
      return False
    self._beat += 1
    self._replace()
    return True

  def confirm(self) -> bool:
    """Re-reads the lease before a write: False (after `on_lost`) if it is
    another chief's now.

    The heartbeat finds a lost lease within a renewal period; a chief paused
    past the timeout (a stopped process, a suspended VM) resumes in its main
    loop too, which may be about to checkpoint into a directory another
    chief has taken over. Reads only: renewing stays the heartbeat's.
    """
    return self._still_ours(_read_raw(self.path))

  def _still_ours(self, raw: Optional[bytes]) -> bool:
    """True if `raw` is our lease; else says whose it is, calls `on_lost`."""
    holder = _parse(raw)
    if holder is not None and holder.token == self.token:
      return True
    logging.error('lease of %s lost to the chief on %s', self.run_dir,
                  _describe(holder))
    if self._on_lost is not None:
      self._on_lost(holder)
    return False

  def start_heartbeat(self) -> None:
    """Renews the lease every `renew_every_s` from a daemon thread."""
    self._thread = threading.Thread(target=self._heartbeat, name='lease',
                                    daemon=True)
    self._thread.start()

  def _heartbeat(self) -> None:
    while not self._stop.wait(self.renew_every_s):
      try:
        if not self.renew():
          return
      except OSError as e:  # a file-server hiccup: try again next period
        logging.warning('lease of %s not renewed: %s', self.run_dir,
                        e.strerror or e)

  def release(self) -> None:
    """Stops renewing and deletes the lease if it is still ours."""
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout=self.renew_every_s + 5)
    holder = _parse(_read_raw(self.path))
    if holder is not None and holder.token == self.token:
      _remove(self.path)
    _remove(f'{self.path}.{self.token[:16]}.tmp')
    if self._made_run_dir:
      # A run refused after the lease (a ps not reachable, a full disk)
      # leaves no trace; a run that wrote anything keeps its directory.
      try:
        os.rmdir(self.run_dir)
      except OSError:
        pass


def _remove(path: str) -> None:
  try:
    os.remove(path)
  except FileNotFoundError:
    pass


def exit_on_lost(holder: Optional[Holder]) -> None:
  """A chief's `on_lost`: another chief owns the directory; stop at once.

  Nothing more may be written (a last checkpoint included), so the process
  ends here with exit status 2, after the error line `renew` logged.
  """
  del holder  # named in that line
  logging.flush()
  os._exit(exit_codes.BAD_INPUT)  # pylint: disable=protected-access


def hold(run_dir: str, timeout_s: float,
         on_lost: Callable[[Optional[Holder]], None] = exit_on_lost) -> Lease:
  """Acquires `run_dir`'s lease for this process and starts its heartbeat.

  The token comes from TOKEN_ENV when the launcher set one.
  """
  lease = Lease(run_dir, timeout_s, token=os.environ.get(TOKEN_ENV) or None,
                on_lost=on_lost)
  lease.acquire()
  lease.start_heartbeat()
  return lease


class Tenant:
  """A task that writes into the run directory for its chief: the evaluator.

  `owner_live()` is True while this tenant saw the lease's content change
  less than `timeout_s` ago, between two looks less than `timeout_s` apart:
  its owner renewed it recently. (After a long pause without looking, a
  change proves little: it takes another look, within a renewal period.) With a launch token (TOKEN_ENV) only
  the lease of that launch's chief counts; a lease of another launch after
  ours was seen raises errors.LeaseHeld (our chief lost the directory). Reads only.
  """

  def __init__(self, run_dir: str, timeout_s: float, token: Optional[str] = None,
               clock: Clock = SYSTEM_CLOCK):
    self._path = lease_path(run_dir)
    self._run_dir = run_dir
    self._timeout_s = timeout_s
    self._token = token if token is not None else os.environ.get(TOKEN_ENV)
    self._clock = clock
    self._last: Optional[bytes] = None
    self._last_at = float('-inf')
    self._changed_at = float('-inf')
    self._seen_ours = False

  def owner_live(self) -> bool:
    raw = _read_raw(self._path)
    now = self._clock.monotonic()
    if raw != self._last and now - self._last_at < self._timeout_s:
      self._changed_at = now
    self._last, self._last_at = raw, now
    holder = _parse(raw)
    if holder is None:
      return False
    if self._of_another_launch(holder):
      if self._seen_ours:
        raise errors.LeaseHeld(f'run directory {self._run_dir} now belongs to the '
                               f'chief on {holder.describe()}; this task\'s chief '
                               'lost its lease')
      return False  # our chief has not taken it over yet
    self._seen_ours = True
    return now - self._changed_at < self._timeout_s

  def released(self) -> bool:
    """True when there is no lease (the chief finished, or none started)."""
    return _read_raw(self._path) is None

  def held_by_another_launch(self) -> bool:
    """True when the lease names a chief of another launch than this
    tenant's (False without a launch token: nothing to tell them apart)."""
    holder = _parse(_read_raw(self._path))
    return holder is not None and self._of_another_launch(holder)

  def _of_another_launch(self, holder) -> bool:
    return bool(self._token) and holder.token != self._token
