"""Redis round trips that overlap the caller's work (core.cache_split): the throttles' script
sent before a query and read after it, and writes whose answers are read later."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import core.cache
from core.cache import ResilientRedisCache, ThrottleCounter
from core.cache_split import WriteBehind, counts_sent
from tests.reliability.conftest import RedisProcess, free_port

OPTIONS = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}


def _backend(url: str) -> ResilientRedisCache:
    return ResilientRedisCache(url, {"KEY_PREFIX": "zspb", "OPTIONS": dict(OPTIONS)})


def _throttles(prefix: str) -> list[ThrottleCounter]:
    return [ThrottleCounter(key=f"{prefix}:ip", timeout=61, limit=2),
            ThrottleCounter(key=f"{prefix}:account", timeout=61, limit=5)]


@pytest.fixture
def no_journal(monkeypatch: Any) -> None:
    monkeypatch.setattr("core.cache._journal_outage", lambda *args: None)


def test_counts_are_counted_when_sent_and_read_after(redis_process: RedisProcess) -> None:
    backend = _backend(redis_process.url)
    server = redis_process.client()
    pending = counts_sent(backend, _throttles("rl:s"))
    # Counted in Redis before the caller reads anything: the script went out at once.
    assert server.get("zspb:1:rl:s:ip") == b"1"
    assert pending.result() == [1, 1]
    assert pending.result() == [1, 1]  # read once, kept
    results = []
    for _ in range(3):
        results.append(counts_sent(backend, _throttles("rl:s")).result())
    assert results == [[2, 2], [3], [4]]  # stops at the first counter over its limit
    pool = backend.redis_client().connection_pool
    assert not pool._in_use_connections  # every connection went back to the pool


def test_a_discarded_count_closes_its_connection(redis_process: RedisProcess) -> None:
    backend = _backend(redis_process.url)
    pending = counts_sent(backend, _throttles("rl:d"))
    pending.discard()
    pool = backend.redis_client().connection_pool
    assert not pool._in_use_connections
    # The unread reply must not answer the next command on a reused connection.
    assert backend.get("missing") is None
    assert counts_sent(backend, _throttles("rl:d")).result() == [2, 2]


def test_counts_fall_back_while_redis_is_unreachable(no_journal: None) -> None:
    location = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    backend = _backend(location)
    try:
        counts = [counts_sent(backend, _throttles("rl:f")).result() for _ in range(4)]
        assert counts == [[1, 1], [2, 2], [3], [4]]
        assert backend.outage.down
    finally:
        core.cache._outages.pop(location, None)


def test_counts_sent_before_a_kill_fall_back_when_read(redis_process: RedisProcess,
                                                       no_journal: None) -> None:
    backend = _backend(redis_process.url)
    try:
        assert counts_sent(backend, _throttles("rl:k")).result() == [1, 1]
        redis_process.pause()  # the script is sent, its answer never comes
        pending = counts_sent(backend, _throttles("rl:k"))
        assert pending.result() == [1, 1]  # the per-process fallback counted it
        assert backend.outage.down
    finally:
        redis_process.resume()
        core.cache._outages.pop(redis_process.url, None)


def test_write_behind_reads_answers_before_the_next_write(redis_process: RedisProcess) -> None:
    backend = _backend(redis_process.url)
    writes = WriteBehind()
    lost: list[int] = []
    for n in range(5):
        writes.send(backend, ("INCR", "zspb:wb"), on_lost=lambda n=n: lost.append(n))
    server = redis_process.client()
    assert server.get("zspb:wb") == b"5"
    assert lost == []
    channels = writes._idle[backend.location]
    assert len(channels) == 1  # one connection, lent to each write in turn
    assert len(channels[0].unread) == 1  # only the last write's answer is still to read


def test_write_behind_keeps_one_connection_across_threads(redis_process: RedisProcess) -> None:
    # Under ASGI each request runs in a new thread: a connection per thread was a connection
    # (and a handshake) per licence check.
    backend = _backend(redis_process.url)
    writes = WriteBehind()
    for _ in range(5):
        thread = threading.Thread(target=writes.send, args=(backend, ("INCR", "zspb:wb4"),
                                                             lambda: None))
        thread.start()
        thread.join()
    assert redis_process.client().get("zspb:wb4") == b"5"
    assert len(writes._idle[backend.location]) == 1
    clients = redis_process.client().client_list()
    assert len(clients) <= 3  # the write-behind one, the test's, at most one pooled


def test_write_behind_runs_on_lost_for_answers_that_never_came(
        redis_process: RedisProcess, no_journal: None) -> None:
    backend = _backend(redis_process.url)
    writes = WriteBehind()
    lost: list[str] = []
    try:
        writes.send(backend, ("INCR", "zspb:wb2"), on_lost=lambda: lost.append("first"))
        assert redis_process.client().get("zspb:wb2") == b"1"
        redis_process.kill()
        writes.send(backend, ("INCR", "zspb:wb2"), on_lost=lambda: lost.append("second"))
        # The first answer was already in the socket: read, not lost. The second could not be
        # sent (or its answer will never come): counted elsewhere at once or at the next write.
        writes.send(backend, ("INCR", "zspb:wb2"), on_lost=lambda: lost.append("third"))
        assert "first" not in lost
        assert "second" in lost and "third" in lost
        assert backend.outage.down
    finally:
        core.cache._outages.pop(redis_process.url, None)


def test_write_behind_keeps_one_connection_per_location(redis_process: RedisProcess,
                                                        no_journal: None) -> None:
    # An answer waiting from one Redis must not be read as the other's (nor end its outage).
    up = _backend(redis_process.url)
    down_location = f"redis://127.0.0.1:{free_port()}/0"
    down = _backend(down_location)
    writes = WriteBehind()
    lost: list[str] = []
    try:
        writes.send(up, ("INCR", "zspb:wb3"), on_lost=lambda: lost.append("up"))
        writes.send(down, ("INCR", "zspb:wb3"), on_lost=lambda: lost.append("down"))
        assert lost == ["down"] and down.outage.down
        writes.send(down, ("INCR", "zspb:wb3"), on_lost=lambda: lost.append("down again"))
        assert down.outage.down
        writes.send(up, ("INCR", "zspb:wb3"), on_lost=lambda: lost.append("up again"))
        assert lost == ["down", "down again"]
        assert redis_process.client().get("zspb:wb3") == b"2"
    finally:
        core.cache._outages.pop(down_location, None)
