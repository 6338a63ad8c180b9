"""Redis commands whose reply is read later, so that a request's Redis round trip overlaps its
database work instead of adding to it.

Under ASGI a process runs its sync views one at a time in one thread: every round trip a hot
path waits for is time the worker does nothing. The licence check and redeem wait on Redis
twice (their throttles, the check's success count) and on PostgreSQL; two of those waits are
not needed:

- `counts_sent` sends the throttles' script before the caller's read-only query and reads the
  counts after it (`Pending.result`): one round trip's wait instead of two.
- `WriteBehind` sends a write whose answer the caller does not need (the success count) and
  reads that answer before the thread's next such write, by which time it has long arrived.

Both keep `core.cache.ResilientRedisCache`'s outage handling: while Redis is known to be down
they use the fallback at once, and a send or read that cannot reach Redis falls back too.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.cache.backends.base import BaseCache

from core.cache import (
    UNREACHABLE,
    ResilientRedisCache,
    ThrottleCounter,
    counts_by_add_incr,
)


class Pending:
    """The counts of throttle counters whose script was sent: read them with `result()`, or
    give the connection back unread with `discard()`; exactly one of the two, once."""

    def __init__(self, *, value: list[int] | None = None,
                 backend: ResilientRedisCache | None = None, connection: Any = None,
                 fallback: Callable[[], list[int]] | None = None) -> None:
        self._value = value
        self._backend = backend
        self._connection = connection
        self._fallback = fallback

    def result(self) -> list[int]:
        if self._value is not None:
            return self._value
        backend, connection, fallback = self._backend, self._connection, self._fallback
        assert backend is not None and connection is not None and fallback is not None
        self._connection = None
        pool = backend.redis_client().connection_pool
        try:
            reply = connection.read_response()
        except UNREACHABLE as error:
            connection.disconnect()
            pool.release(connection)
            backend.redis_failed(error)
            self._value = fallback()
            return self._value
        except BaseException:
            connection.disconnect()  # the reply may still be on its way: never reuse the socket
            pool.release(connection)
            raise
        pool.release(connection)
        backend.redis_answered()
        self._value = [int(n) for n in reply]
        return self._value

    def discard(self) -> None:
        """Give the connection back without reading the reply (the caller failed): it is closed,
        as its unread reply would otherwise answer the next command sent on it. The counts were
        made in Redis all the same."""
        if self._backend is not None and self._connection is not None:
            self._connection.disconnect()
            self._backend.redis_client().connection_pool.release(self._connection)
            self._connection = None


def counts_sent(backend: BaseCache, counters: Sequence[ThrottleCounter]) -> Pending:
    """`core.cache.counts_in_windows`, sent now and read by `Pending.result()`. Backends other
    than Redis (and Redis while it is down) count at once."""
    if not isinstance(backend, ResilientRedisCache):
        return Pending(value=counts_by_add_incr(backend, counters))

    def fallback() -> list[int]:
        return counts_by_add_incr(backend.fallback, counters)

    if backend.skip_redis():
        return Pending(value=fallback())
    pool = backend.redis_client().connection_pool
    connection = None
    try:
        connection = pool.get_connection()
        connection.send_command(*backend.count_script_call(counters))
    except UNREACHABLE as error:
        if connection is not None:
            connection.disconnect()
            pool.release(connection)
        backend.redis_failed(error)
        return Pending(value=fallback())
    return Pending(backend=backend, connection=connection, fallback=fallback)


@dataclass
class _Channel:
    """A write-behind connection to one Redis location, used by one thread at a time."""

    connection: Any = None
    # What to do for each sent write whose answer has not been read, should it never come.
    unread: list[Callable[[], None]] = field(default_factory=list)


class WriteBehind:
    """Writes to Redis whose answers are read before the next write on the same connection,
    on connections of its own (answers waiting on a pooled connection would answer someone
    else's command), kept per process and Redis location and lent to one thread at a time.
    Not per thread: under ASGI every request runs in a thread of its own, and a connection
    per thread was a new connection (and its handshake) per licence check.

    A write is sent and not waited for. Before the connection's next write, the answers of
    the earlier ones are read; if they cannot be (Redis went away), each earlier write's
    `on_lost` runs then, so what was written is written again elsewhere rather than lost (it
    may then count twice, never zero times: the same rule as a command that timed out). A
    write that cannot be sent, or one while Redis is down, runs its `on_lost` at once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = 0
        self._idle: dict[str, list[_Channel]] = {}

    def _take(self, backend: ResilientRedisCache) -> _Channel:
        with self._lock:
            if self._pid != os.getpid():  # a forked child must not share the parent's sockets
                self._pid, self._idle = os.getpid(), {}
            idle = self._idle.setdefault(backend.location, [])
            return idle.pop() if idle else _Channel()

    def _give_back(self, backend: ResilientRedisCache, channel: _Channel) -> None:
        with self._lock:
            if self._pid == os.getpid():
                self._idle.setdefault(backend.location, []).append(channel)

    def send(self, backend: ResilientRedisCache, args: Sequence[Any],
             on_lost: Callable[[], None]) -> None:
        channel = self._take(backend)
        try:
            self._send(backend, channel, args, on_lost)
        finally:
            self._give_back(backend, channel)

    def _send(self, backend: ResilientRedisCache, channel: _Channel, args: Sequence[Any],
              on_lost: Callable[[], None]) -> None:
        self._read_answers(backend, channel)
        if backend.skip_redis():
            on_lost()
            return
        try:
            if channel.connection is None:
                pool = backend.redis_client().connection_pool
                # Outside the pool's accounting: it is never handed to anyone else.
                channel.connection = pool.connection_class(**pool.connection_kwargs)
            channel.connection.send_command(*args)
        except UNREACHABLE as error:
            self._drop(backend, channel, error)
            on_lost()
            return
        channel.unread.append(on_lost)

    def _read_answers(self, backend: ResilientRedisCache, channel: _Channel) -> None:
        while channel.unread:
            try:
                channel.connection.read_response()
            except UNREACHABLE as error:
                for on_lost in self._drop(backend, channel, error):
                    on_lost()
                return
            except Exception:
                # An error answer (a bug, not an outage): raised like any failed Redis
                # command; the write it answers was not made.
                channel.unread.pop(0)
                raise
            channel.unread.pop(0)
            backend.redis_answered()

    def _drop(self, backend: ResilientRedisCache, channel: _Channel,
              error: BaseException) -> list[Callable[[], None]]:
        lost, channel.unread = channel.unread, []
        if channel.connection is not None:
            channel.connection.disconnect()
            channel.connection = None
        backend.redis_failed(error)
        return lost
