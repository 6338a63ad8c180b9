"""The throttles' counter and the Redis client the cache keeps per process (issue 12: six
round trips and a new connection per licence check before)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache.backends.locmem import LocMemCache

import core.cache
from core.cache import ResilientRedisCache, ThrottleCounter, count_in_window, counts_in_windows
from tests.reliability.conftest import RedisProcess, free_port

OPTIONS = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}


def _backend(url: str) -> ResilientRedisCache:
    return ResilientRedisCache(url, {"KEY_PREFIX": "zspb", "OPTIONS": dict(OPTIONS)})


def test_backend_instances_share_one_client_per_location(redis_process: RedisProcess) -> None:
    # Django makes a backend instance per context, i.e. per request under ASGI.
    first = _backend(redis_process.url)
    second = _backend(redis_process.url)
    assert first._cache is second._cache
    other = _backend(f"redis://127.0.0.1:{redis_process.port}/1")
    assert other._cache is not first._cache


def test_counts_in_one_round_trip(redis_process: RedisProcess, monkeypatch: Any) -> None:
    backend = _backend(redis_process.url)
    sent: list[int] = []
    client = backend._cache.get_client(None, write=True)
    pipeline_class = type(client.pipeline())
    real_execute = pipeline_class.execute

    def counting_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(len(self.command_stack))
        return real_execute(self, *args, **kwargs)

    monkeypatch.setattr(pipeline_class, "execute", counting_execute)
    assert [count_in_window(backend, "rl:x", 61) for _ in range(3)] == [1, 2, 3]
    assert sent == [2, 2, 2]  # SET NX EX + INCR, in one transaction each time
    server = redis_process.client()
    assert server.get("zspb:1:rl:x") == b"3"
    assert 0 < server.ttl("zspb:1:rl:x") <= 61
    # Readable through the cache like any counter.
    assert backend.get("rl:x") == 3


def test_counts_in_the_fallback_while_redis_is_unreachable(monkeypatch: Any) -> None:
    monkeypatch.setattr("core.cache._journal_outage", lambda *args: None)
    location = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    backend = _backend(location)
    try:
        assert [count_in_window(backend, "rl:y", 61) for _ in range(3)] == [1, 2, 3]
        assert backend.outage.down
    finally:
        core.cache._outages.pop(location, None)


@pytest.mark.parametrize("timeout", [1, 61])
def test_other_backends_count_by_add_and_incr(timeout: int) -> None:
    backend = LocMemCache(f"counter-test-{timeout}", {})  # a store per name and process
    assert [count_in_window(backend, "rl:z", timeout) for _ in range(3)] == [1, 2, 3]


def _throttles(prefix: str) -> list[ThrottleCounter]:
    return [ThrottleCounter(key=f"{prefix}:ip", timeout=61, limit=2),
            ThrottleCounter(key=f"{prefix}:account", timeout=61, limit=5)]


def test_several_counters_in_one_round_trip_stop_at_the_first_over_its_limit(
        redis_process: RedisProcess, monkeypatch: Any) -> None:
    backend = _backend(redis_process.url)
    client = backend._cache.get_client(None, write=True)
    calls: list[str] = []
    real = type(client).execute_command

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(str(args[0]))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(client), "execute_command", counting)
    counts = [counts_in_windows(backend, _throttles("rl:m")) for _ in range(4)]
    # The address's limit is 2: the third and fourth attempts stop there, and the account's
    # counter is not used up by attempts the address's throttle refused.
    assert counts == [[1, 1], [2, 2], [3], [4]]
    assert calls == ["EVAL"] * 4  # one round trip each
    server = redis_process.client()
    assert server.get("zspb:1:rl:m:ip") == b"4" and server.get("zspb:1:rl:m:account") == b"2"
    assert 0 < server.ttl("zspb:1:rl:m:account") <= 61


def test_several_counters_in_the_fallback_and_other_backends(monkeypatch: Any) -> None:
    monkeypatch.setattr("core.cache._journal_outage", lambda *args: None)
    location = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    try:
        for backend in (_backend(location), LocMemCache("counters-test", {})):
            counts = [counts_in_windows(backend, _throttles("rl:f")) for _ in range(4)]
            assert counts == [[1, 1], [2, 2], [3], [4]]
    finally:
        core.cache._outages.pop(location, None)
