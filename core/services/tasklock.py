"""A cache lock for background jobs that should run one at a time (role-sync drain, webhook
delivery, expiry pushes), which a killed holder does not keep for its whole timeout.

The lock's value names its holder (host, process id, a random token). A worker killed outright
(SIGKILL, the OOM killer, a restart of the unit) cannot release it; the next job on the same
host sees that the holder's process is gone and takes the lock over at once, instead of every
run being refused until the timeout. A holder on another host is waited out (its TTL), since
its process table cannot be read from here.
"""

from __future__ import annotations

import os
import secrets
import socket

from django.core.cache import cache


def _holder_gone(value: object) -> bool:
    """Whether the lock value names a process of this host that no longer runs."""
    if not isinstance(value, str):
        return False
    host, _, rest = value.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # our own lock: a second run in this process waits like any other
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no such process (or no /proc: then never reached, see below)
    return state in ("Z", "X")  # killed, not yet reaped by its parent


def lock_acquire(key: str, *, ttl: int) -> str | None:
    """Take the lock for `ttl` seconds: the token to release it with, or None when held."""
    token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(6)}"
    if cache.add(key, token, timeout=ttl):
        return token
    holder = cache.get(key)
    if not os.path.isdir("/proc") or not _holder_gone(holder):
        return None
    # Two takers racing here could both delete and both add; the jobs behind this lock stay
    # correct when they overlap (claims, conditional updates), the lock only saves work.
    if cache.get(key) == holder:
        cache.delete(key)
    return token if cache.add(key, token, timeout=ttl) else None


def lock_release(key: str, token: str) -> None:
    if cache.get(key) == token:
        cache.delete(key)
