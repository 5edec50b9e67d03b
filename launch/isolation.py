"""Keep a local cluster's servers off the network.

TensorFlow's gRPC servers and Reverb listen on every interface and have no
way to bind to one address. On one machine the launcher therefore moves
itself, before starting any task, into a new network namespace that holds
only a loopback interface: every task inherits it, so every server is
reachable on 127.0.0.1 from the cluster's own processes and from nowhere else.

Needs Linux and either root or unprivileged user namespaces; where neither is
available the cluster runs on the host's network and the launcher says so.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFREQ = '16sh22x'  # struct ifreq: name, flags, padding to 40 bytes


def _unshare(flags: int) -> None:
  libc = ctypes.CDLL(None, use_errno=True)
  if libc.unshare(flags) != 0:
    errno = ctypes.get_errno()
    raise OSError(errno, os.strerror(errno))


def _map_to_root(uid: int, gid: int) -> None:
  """In a new user namespace, be root there (needed to configure its net)."""
  with open('/proc/self/setgroups', 'w') as f:
    f.write('deny')
  with open('/proc/self/uid_map', 'w') as f:
    f.write(f'0 {uid} 1')
  with open('/proc/self/gid_map', 'w') as f:
    f.write(f'0 {gid} 1')


def _loopback_up() -> None:
  with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    request = struct.pack(_IFREQ, b'lo', 0)
    flags = struct.unpack(_IFREQ, fcntl.ioctl(s, _SIOCGIFFLAGS, request))[1]
    fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack(_IFREQ, b'lo', flags | _IFF_UP))


def isolate_network() -> str | None:
  """Moves this process into a loopback-only network namespace.

  Must run before any thread or child process is started.

  Returns:
    None on success, else why it could not be done.
  """
  uid, gid = os.getuid(), os.getgid()
  try:
    if uid == 0:
      _unshare(CLONE_NEWNET)
    else:
      _unshare(CLONE_NEWUSER | CLONE_NEWNET)
      _map_to_root(uid, gid)
    _loopback_up()
  except OSError as e:
    return f'{e.strerror or e}'
  return None


def interfaces(pid: int | str = 'self') -> list[str]:
  """Network interfaces visible to a process (from /proc/<pid>/net/dev)."""
  with open(f'/proc/{pid}/net/dev') as f:
    lines = f.read().splitlines()[2:]
  return [line.split(':', 1)[0].strip() for line in lines]
