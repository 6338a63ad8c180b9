"""Redis killed under traffic: the site keeps answering on a per-process cache, throttles keep
their rates, one error entry is journaled for the outage, and Redis is used again once it is back.

Runs against a throwaway redis-server that the test kills with SIGKILL and starts again.
"""

from __future__ import annotations

import base64
import json
import statistics
import time
from dataclasses import replace
from datetime import timedelta
from importlib import import_module
from typing import Any

import pytest
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.test import Client

import core.cache
from config.behaviour import Rate
from core.cache import OUTAGE_ACTION, ResilientRedisCache
from core.models import LogEntry, Subscription
from core.services.invites import invite_create
from core.services.keys import key_redeem, keys_generate
from tests.conftest import run_concurrently
from tests.reliability.conftest import RedisProcess, free_port

PASSWORD = "correct horse battery"
NONCE = "0123456789abcdef0123"


@pytest.fixture
def redis_cache(redis_process: RedisProcess, settings: Any) -> ResilientRedisCache:
    settings.CACHES = {"default": {
        "BACKEND": "core.cache.ResilientRedisCache", "LOCATION": redis_process.url,
        "KEY_PREFIX": "zspb", "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }}
    # The real-time pushes (after a redeem) go through the same Redis, by the site's layer.
    settings.CHANNEL_LAYERS = {"default": {
        "BACKEND": "core.channel_layer.BatchingRedisChannelLayer",
        "CONFIG": {"hosts": [{"address": redis_process.url, "socket_timeout": 15,
                              "socket_connect_timeout": 2}], "prefix": "zspb:ws"},
    }}
    backend = caches["default"]
    assert isinstance(backend, ResilientRedisCache)
    return backend


@pytest.fixture(autouse=True)
def _no_outage_left_over() -> Any:
    core.cache._outages.clear()
    yield
    core.cache._outages.clear()


def _limit(settings: Any, **rates: Rate) -> None:
    settings.ZSPB = replace(settings.ZSPB, rate_limits=dict(settings.ZSPB.rate_limits, **rates))


def _json(client: Client, path: str, body: dict[str, Any], ip: str) -> Any:
    return client.post(path, data=json.dumps(body), content_type="application/json",
                       REMOTE_ADDR=ip)


def _licence(client: Client, code: str, ip: str) -> Any:
    return _json(client, "/api/license/check",
                 {"product": "loader", "hwid": "hw-1", "nonce": NONCE, "key": code}, ip)


def _valid(response: Any) -> bool:
    assert response.status_code == 200, response.content
    return bool(json.loads(base64.b64decode(response.json()["payload"]))["valid"])


def _throttle_keys(server: RedisProcess) -> list[bytes]:
    return list(server.client().scan_iter(match="*rl:*"))


@pytest.mark.django_db(transaction=True)
def test_site_answers_through_a_redis_outage_and_uses_redis_again(
        redis_process, redis_cache, settings, moderator, member, admin, product):
    # Sessions are in PostgreSQL, not in Redis: Django's database store (read faster).
    store = import_module(settings.SESSION_ENGINE).SessionStore
    assert issubclass(store, DatabaseSessionStore)
    _limit(settings, license_subject=Rate(count=1000, seconds=60))  # one key checked often
    code = keys_generate(actor=moderator, product=product, duration=timedelta(days=30),
                         count=1).codes[0]
    key_redeem(user=member, code=code)
    spare = keys_generate(actor=moderator, product=product, duration=timedelta(days=30),
                          count=1).codes[0]
    invite = invite_create(creator=admin)
    browser = Client(REMOTE_ADDR="198.51.100.10")
    statuses: list[int] = []

    def seen(response: Any) -> Any:
        statuses.append(response.status_code)
        return response

    # Redis up: logged in, throttle counters live in Redis.
    assert seen(_json(browser, "/api/auth/login", {"username": "member", "password": PASSWORD},
                      "198.51.100.10")).status_code == 200
    assert _valid(seen(_licence(Client(), code, "198.51.100.11")))
    assert _throttle_keys(redis_process)
    up = []
    for _ in range(20):
        started = time.perf_counter()
        assert _valid(seen(_licence(Client(), code, "198.51.100.12")))
        up.append(time.perf_counter() - started)

    redis_process.kill()

    # Redis down: the session made before the outage still works (it lives in the database).
    assert seen(browser.get("/")).status_code == 200
    assert seen(browser.get("/api/auth/me")).json()["username"] == "member"
    down = []
    for _ in range(20):
        started = time.perf_counter()
        assert _valid(seen(_licence(Client(), code, "198.51.100.13")))
        down.append(time.perf_counter() - started)
    assert seen(_json(Client(), "/api/auth/login", {"username": "member", "password": PASSWORD},
                      "198.51.100.14")).status_code == 200
    fresh = Client(REMOTE_ADDR="198.51.100.15")
    fresh.get("/api/auth/csrf")
    assert seen(_json(fresh, "/api/auth/register", {"invite": invite.code, "username": "fresh",
                                                    "password": "a fine passphrase"},
                      "198.51.100.15")).status_code == 201
    started = time.perf_counter()
    redeemed = seen(_json(fresh, "/api/keys/redeem", {"key": spare}, "198.51.100.15"))
    redeem_seconds = time.perf_counter() - started
    assert redeemed.status_code == 200, redeemed.content
    assert Subscription.objects.filter(user__username="fresh").exists()
    assert seen(fresh.get("/redeem")).status_code == 200

    # Throttles still refuse past the limit, counted in this process.
    _limit(settings, license_ip=Rate(count=5, seconds=60))
    answers = [seen(_licence(Client(), code, "198.51.100.16")).status_code for _ in range(7)]
    assert answers == [200] * 5 + [429] * 2

    # Many threads at once during the outage: still one journal entry.
    results = run_concurrently(
        lambda i: _licence(Client(), code, f"198.51.100.{100 + i}").status_code, threads=8)
    assert results == [200] * 8, results

    assert not [status for status in statuses if status >= 500], statuses
    errors = LogEntry.objects.filter(category=LogEntry.Category.ERROR)
    assert [entry.action for entry in errors] == [OUTAGE_ACTION]
    assert errors[0].data["place"] == "cache:redis"

    # Redis back on the same port: used again without a restart, once the retry period passed.
    redis_process.start()
    assert not _throttle_keys(redis_process)  # started empty
    time.sleep(core.cache.RETRY_SECONDS + 0.1)
    assert _valid(seen(_licence(Client(), code, "198.51.100.17")))
    assert _throttle_keys(redis_process)
    assert not redis_cache.outage.down
    assert client_health(Client())[1]["cache"] is True
    assert LogEntry.objects.filter(category=LogEntry.Category.ERROR).count() == 1
    print(f"\nlicence check median with Redis up {statistics.median(up) * 1000:.1f} ms, "
          f"down {statistics.median(down) * 1000:.1f} ms (max {max(down) * 1000:.1f} ms); "
          f"redeem with its push to a dead Redis {redeem_seconds * 1000:.0f} ms")


@pytest.mark.django_db(transaction=True)
def test_a_hung_redis_costs_one_short_timeout_per_second(redis_process, redis_cache, settings,
                                                         moderator, member, product):
    """SIGSTOP: connections are accepted but never answered. Each process waits out the
    socket timeout (0.5 s) at most once per retry period; the other requests do not wait."""
    # As many checks as 2.5 s allow, from one address: on a fast machine more than the
    # shipped per-address rate (the fallback throttle then rightly answers 429).
    _limit(settings, license_subject=Rate(count=100_000, seconds=60),
           license_ip=Rate(count=100_000, seconds=60))
    code = keys_generate(actor=moderator, product=product, duration=timedelta(days=30),
                         count=1).codes[0]
    key_redeem(user=member, code=code)
    assert _valid(_licence(Client(), code, "198.51.100.20"))
    redis_process.pause()
    try:
        took = []
        finish = time.monotonic() + 2.5
        while time.monotonic() < finish:
            started = time.perf_counter()
            assert _valid(_licence(Client(), code, "198.51.100.21"))
            took.append(time.perf_counter() - started)
        slow = [t for t in took if t > 0.4]
        assert 1 <= len(slow) <= 4, took  # the first call, then one probe a second
        assert max(took) < 1.5 and statistics.median(took) < 0.2, took
    finally:
        redis_process.resume()
    time.sleep(core.cache.RETRY_SECONDS + 0.1)
    assert _valid(_licence(Client(), code, "198.51.100.22"))
    assert not redis_cache.outage.down
    assert LogEntry.objects.filter(category=LogEntry.Category.ERROR,
                                   action=OUTAGE_ACTION).count() == 1
    print(f"\nhung Redis: {len(took)} licence checks in 2.5 s, {len(slow)} waited "
          f"{max(took) * 1000:.0f} ms at most, median {statistics.median(took) * 1000:.1f} ms")


def client_health(client: Client, path: str = "/api/health") -> tuple[int, dict[str, Any]]:
    response = client.get(path)
    body: dict[str, Any] = response.json()
    return response.status_code, body


@pytest.mark.django_db(transaction=True)
def test_health_reports_redis_down_while_the_fallback_answers(redis_process, redis_cache):
    assert client_health(Client()) == (200, {"database": True, "cache": True,
                                             "queue_length": 0, "queue_ok": True})
    status, ready = client_health(Client(), "/api/health/ready")
    assert status == 200 and ready["ready"] is True and ready["degraded"] is False
    redis_process.kill()
    assert cache.add("zspb:probe", 1) is True  # the fallback answers
    # Monitoring sees Redis down; the balancer keeps the node, which serves from the fallback.
    status, health = client_health(Client())
    assert status == 503 and health["cache"] is False and health["database"] is True
    status, ready = client_health(Client(), "/api/health/ready")
    assert status == 200
    assert ready["ready"] is True and ready["degraded"] is True and ready["cache"] is False


def test_a_dead_redis_is_asked_at_most_once_per_retry_period(db, settings, monkeypatch):
    settings.CACHES = {"default": {
        "BACKEND": "core.cache.ResilientRedisCache",
        "LOCATION": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        "OPTIONS": {"socket_connect_timeout": 0.5},
    }}
    monkeypatch.setattr(core.cache, "RETRY_SECONDS", 0.3)
    monkeypatch.setattr(core.cache, "_journal_outage", lambda *args: None)
    asked = []
    real_get = RedisCache.get

    def counting_get(self: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(1)
        return real_get(self, *args, **kwargs)

    monkeypatch.setattr(RedisCache, "get", counting_get)
    started = time.perf_counter()
    cache.set("k", 1)
    for _ in range(500):
        assert cache.get("k") == 1
    elapsed = time.perf_counter() - started
    assert asked == []  # the failed set opened the circuit: no get reached Redis
    time.sleep(0.35)
    assert cache.get("k") == 1
    assert len(asked) == 1  # one probe after the period, answered by the fallback again
    assert elapsed < 0.5, elapsed


def test_other_redis_errors_still_raise(redis_cache):
    # Only "Redis is unreachable" is absorbed; a wrong operation fails as it would without it.
    with pytest.raises(ValueError, match="not found"):
        cache.incr("zspb:missing")
    assert not redis_cache.outage.down
