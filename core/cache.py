"""The Redis cache backend with a per-process fallback for when Redis is unreachable.

Every cache user (throttles, the Discord limiter, locks, the error journal's deduplication)
goes through Django's cache, so this backend is the one place where a Redis outage is
absorbed: a call that cannot reach Redis is answered by a local-memory cache instead, with the
same keys and timeouts. Throttles therefore keep their rates, counted per process rather than
across processes, and nothing raises to the request.

While Redis is down, a process asks it again at most once per RETRY_SECONDS (the other calls go
straight to the local cache), so a dead Redis costs one short connect timeout per second, not
one per call. The first call that reaches Redis again ends the outage: no restart. An outage is
journaled once (see `_journal_outage`), not once per request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple, TypeVar, cast

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.db import DatabaseError, transaction
from django.utils import timezone
from django.utils.functional import cached_property
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("zspb.cache")

RETRY_SECONDS = 1.0
# Spelt out again at the journal call, where the journal descriptions' check reads it.
OUTAGE_ACTION = "cache.unavailable"
OUTAGE_PLACE = "cache:redis"
# Only these mean "Redis is not there"; any other error (a wrong value type, a bug) still
# raises, as it would without the fallback.
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)

T = TypeVar("T")


@dataclass
class Outage:
    """One process's view of one Redis location; shared by the per-thread cache instances."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    down_since: float | None = None  # time.time() of the first failure, None while up
    next_try: float = 0.0  # time.monotonic() before which Redis is not asked again
    journaled: bool = False

    @property
    def down(self) -> bool:
        return self.down_since is not None


_outages: dict[str, Outage] = {}
_outages_lock = threading.Lock()
# One client (one connection pool) per process and location, shared by the backend instances:
# see ResilientRedisCache._cache.
_clients: dict[tuple[str, str], RedisCacheClient] = {}
_clients_lock = threading.Lock()
# Journaling uses the cache itself (the error journal's deduplication): a failed probe inside
# that call must not start a second journal write.
_journaling = threading.local()


def outage_for(location: str) -> Outage:
    with _outages_lock:
        return _outages.setdefault(location, Outage())


def _journal_outage(location: str, error_type: str) -> None:
    """One system-error entry per outage across processes: a process that finds one written in
    the error journal's deduplication window (by another process, or by a flap a moment ago)
    only logs. Runs after the caller's transaction commits, so a rolled-back request cannot
    take the entry with it (the next failed retry schedules it again)."""
    outage = outage_for(location)
    if not outage.down or outage.journaled or getattr(_journaling, "active", False):
        return
    _journaling.active = True
    try:
        _journal_outage_once(outage, error_type)
    finally:
        _journaling.active = False


def _journal_outage_once(outage: Outage, error_type: str) -> None:
    # Imported here: the cache backend is loaded before the app registry is ready.
    from core.models import LogEntry
    from core.services.logs import ERROR_DEDUP_SECONDS, error_journal

    try:
        since = timezone.now() - timedelta(seconds=ERROR_DEDUP_SECONDS)
        seen = LogEntry.objects.filter(category=LogEntry.Category.ERROR, action=OUTAGE_ACTION,
                                       created_at__gte=since).exists()
    except DatabaseError:
        seen = False
    if not seen and error_journal(action="cache.unavailable", place=OUTAGE_PLACE, error=error_type,
                                  data={"fallback": "per-process local memory"}) is None:
        return  # the journal could not write (or deduplicated it): try again on a later failure
    outage.journaled = True


class _RedisClients(RedisCacheClient):
    """Django's client factory, keeping one redis.Redis per connection pool: Django builds a
    new one on every cache call, which cost about 0.3 ms of CPU each (measured in process), a
    tenth of a licence check. A redis.Redis is safe to share between threads."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._by_pool: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        base = cast(Any, self)  # Django's private attributes, absent from the stubs
        pool = base._get_connection_pool(write)
        client = self._by_pool.get(id(pool))
        if client is None:
            client = self._by_pool[id(pool)] = base._client(connection_pool=pool)
        return client


class ResilientRedisCache(RedisCache):
    """Django's RedisCache, answered from a local-memory cache while Redis is unreachable."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._location = server if isinstance(server, str) else ",".join(server)
        # LocMemCache keeps its data per name in the module, so every thread's instance of this
        # backend shares one fallback store per process.
        self._fallback = LocMemCache(f"zspb-fallback:{self._location}", {
            "TIMEOUT": params.get("TIMEOUT", 300),
            "KEY_PREFIX": params.get("KEY_PREFIX", ""),
            "VERSION": params.get("VERSION", 1),
            "OPTIONS": {"MAX_ENTRIES": 50_000, "CULL_FREQUENCY": 4},
        })

    @property
    def location(self) -> str:
        return self._location

    @property
    def fallback(self) -> LocMemCache:
        """The per-process store that answers while Redis is unreachable."""
        return self._fallback

    @property
    def outage(self) -> Outage:
        return outage_for(self._location)

    @cached_property
    def _cache(self) -> RedisCacheClient:
        # Django builds a client, and with it a connection pool, per backend instance, and
        # caches are context-local: under ASGI every request got its own instance and opened
        # (and dropped) its own Redis connection. One client per process and location keeps
        # the connections; redis-py's pool is thread-safe and starts afresh after a fork.
        base = cast(Any, self)
        key = (self._location, repr(sorted(base._options.items())))
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = _RedisClients(base._servers, **base._options)
        return client

    def redis_client(self) -> Any:
        """The process's Redis client for writes (one connection pool per process and
        location), for the commands the cache API lacks (hashes, scripts, RENAME)."""
        return self._cache.get_client(None, write=True)

    def on_redis(self, run: Callable[[], T], fallback: Callable[[], T]) -> T:
        """`run` (which talks to Redis) under the cache's outage handling: `fallback` instead
        while Redis is unreachable or known to be down, one probe a retry period."""
        return self._call(run, fallback)

    def count_in_window(self, key: str, timeout: int) -> int:
        """One more in the counter `key`, created for `timeout` seconds by its first count; the
        new count. One round trip to Redis (SET NX EX and INCR in a transaction), where add()
        then incr() take three."""
        def on_redis() -> int:
            redis_key = self.make_and_validate_key(key)
            pipe = self.redis_client().pipeline(transaction=True)
            pipe.set(redis_key, 0, ex=timeout, nx=True)
            pipe.incr(redis_key)
            return int(pipe.execute()[1])

        return self._call(on_redis, lambda: _count_by_add_incr(self._fallback, key, timeout))

    def counts_in_windows(self, counters: Sequence[ThrottleCounter]) -> list[int]:
        """count_in_window for several counters in one round trip (a Lua script, so that the
        rule "stop at the first counter over its limit" holds inside Redis too)."""
        def on_redis() -> list[int]:
            counts = self.redis_client().execute_command(*self.count_script_call(counters))
            return [int(n) for n in counts]

        return self._call(on_redis, lambda: counts_by_add_incr(self._fallback, counters))

    def count_script_call(self, counters: Sequence[ThrottleCounter]) -> list[Any]:
        """The EVAL command (name and arguments) that counts `counters` (COUNT_SCRIPT)."""
        keys = [self.make_and_validate_key(c.key) for c in counters]
        args = [value for c in counters for value in (c.timeout, c.limit)]
        return ["EVAL", COUNT_SCRIPT, len(keys), *keys, *args]

    def redis_reachable(self) -> bool:
        """Ask Redis itself (health checks): the fallback answering does not make it up."""
        try:
            ok = bool(self.redis_client().ping())
        except UNREACHABLE as error:
            self._failed(error)
            return False
        self._recovered()
        return ok

    def skip_redis(self) -> bool:
        """Whether a call must use the fallback now: Redis is known to be down and this is not
        the period's one probe. A caller that goes on to Redis reports the outcome with
        redis_failed() or redis_answered(), as `on_redis` does."""
        outage = self.outage
        if outage.down:
            with outage.lock:
                now = time.monotonic()
                if now < outage.next_try:
                    return True
                # This call is the one probe of the period; the others keep to the fallback.
                outage.next_try = now + RETRY_SECONDS
        return False

    def redis_failed(self, error: BaseException) -> None:
        """Redis could not be reached (one of UNREACHABLE): the outage starts or goes on."""
        self._failed(error)

    def redis_answered(self) -> None:
        """Redis answered: an outage, if there was one, is over."""
        if self.outage.down:
            self._recovered()

    def _call(self, on_redis: Callable[[], T], on_fallback: Callable[[], T]) -> T:
        if self.skip_redis():
            return on_fallback()
        try:
            result = on_redis()
        except UNREACHABLE as error:
            self._failed(error)
            return on_fallback()
        self.redis_answered()
        return result

    def _failed(self, error: BaseException) -> None:
        outage = self.outage
        with outage.lock:
            first = not outage.down
            if first:
                outage.down_since = time.time()
            outage.next_try = time.monotonic() + RETRY_SECONDS
            pending = not outage.journaled
        if first:
            log.error("Redis cache at %s unreachable (%s: %s); using a per-process local "
                      "cache, retrying at most every %gs", self._redacted(), type(error).__name__,
                      error, RETRY_SECONDS)
        if pending:
            try:
                transaction.on_commit(
                    lambda: _journal_outage(self._location, type(error).__name__), robust=True)
            except Exception:  # (the database may be down too: a cache call never fails)
                log.warning("could not schedule the journal entry of the Redis outage",
                            exc_info=True)

    def _recovered(self) -> None:
        outage = self.outage
        with outage.lock:
            if not outage.down:
                return
            down_for = time.time() - (outage.down_since or time.time())
            outage.down_since, outage.next_try, outage.journaled = None, 0.0, False
        log.warning("Redis cache at %s reachable again after %.1fs; the local fallback's "
                    "counters are left behind", self._redacted(), down_for)

    def _redacted(self) -> str:
        return self._location.split("@")[-1]

    # Every public operation Django's RedisCache defines; the others (decr, get_or_set, the
    # async variants) are built on these by BaseCache.
    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT,
            version: int | None = None) -> bool:
        return self._call(lambda: RedisCache.add(self, key, value, timeout, version),
                          lambda: self._fallback.add(key, value, timeout, version))

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        return self._call(lambda: RedisCache.get(self, key, default, version),
                          lambda: self._fallback.get(key, default, version))

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT,
            version: int | None = None) -> None:
        self._call(lambda: RedisCache.set(self, key, value, timeout, version),
                   lambda: self._fallback.set(key, value, timeout, version))

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._call(lambda: RedisCache.touch(self, key, timeout, version),
                          lambda: self._fallback.touch(key, timeout, version))

    def delete(self, key: Any, version: int | None = None) -> bool:
        return self._call(lambda: RedisCache.delete(self, key, version),
                          lambda: self._fallback.delete(key, version))

    def get_many(self, keys: Any, version: int | None = None) -> dict[Any, Any]:
        keys = list(keys)
        return self._call(lambda: RedisCache.get_many(self, keys, version),
                          lambda: self._fallback.get_many(keys, version))

    def has_key(self, key: Any, version: int | None = None) -> bool:
        return self._call(lambda: RedisCache.has_key(self, key, version),
                          lambda: self._fallback.has_key(key, version))

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return self._call(lambda: RedisCache.incr(self, key, delta, version),
                          lambda: self._fallback.incr(key, delta, version))

    def set_many(self, data: Any, timeout: Any = DEFAULT_TIMEOUT,
                 version: int | None = None) -> list[Any]:
        return self._call(
            lambda: RedisCache.set_many(self, data, timeout, version),
            lambda: self._fallback.set_many(data, timeout, version))

    def delete_many(self, keys: Any, version: int | None = None) -> None:
        keys = list(keys)
        self._call(lambda: RedisCache.delete_many(self, keys, version),
                   lambda: self._fallback.delete_many(keys, version))

    def clear(self) -> None:
        # Both: a test's (or an operator's) clear must not leave outage-time counters behind.
        self._fallback.clear()
        self._call(lambda: RedisCache.clear(self), lambda: None)


def _count_by_add_incr(backend: BaseCache, key: str, timeout: int) -> int:
    if backend.add(key, 1, timeout=timeout):
        return 1
    try:
        return int(backend.incr(key))
    except ValueError:  # the window expired between add() and incr()
        backend.add(key, 1, timeout=timeout)
        return 1


class ThrottleCounter(NamedTuple):
    """A throttle's counter: its key, the window's length and the count allowed in it."""

    key: str
    timeout: int
    limit: int


# Each counter in turn: created at 0 for its window if absent, then one more; the first one
# over its limit ends the script, so an attempt refused by one throttle does not count
# against the next (an address over its limit does not use up its victim's account's).
COUNT_SCRIPT = """
local counts = {}
for i = 1, #KEYS do
    redis.call('SET', KEYS[i], 0, 'EX', ARGV[2 * i - 1], 'NX')
    counts[i] = redis.call('INCR', KEYS[i])
    if counts[i] > tonumber(ARGV[2 * i]) then break end
end
return counts
"""


def counts_by_add_incr(backend: BaseCache, counters: Sequence[ThrottleCounter]) -> list[int]:
    counts: list[int] = []
    for counter in counters:
        counts.append(_count_by_add_incr(backend, counter.key, counter.timeout))
        if counts[-1] > counter.limit:
            break
    return counts


def counts_in_windows(backend: BaseCache, counters: Sequence[ThrottleCounter]) -> list[int]:
    """Several throttles' counters in order, stopping after the first one over its limit (the
    others are not counted): the counts made. One round trip with Redis."""
    if isinstance(backend, ResilientRedisCache):
        return backend.counts_in_windows(counters)
    return counts_by_add_incr(backend, counters)


def count_in_window(backend: BaseCache, key: str, timeout: int) -> int:
    """One more in the counter `key` (created for `timeout` seconds by its first count), in any
    cache backend; the new count. Throttles count with it."""
    if isinstance(backend, ResilientRedisCache):
        return backend.count_in_window(key, timeout)
    return _count_by_add_incr(backend, key, timeout)


def cache_reachable(cache: BaseCache) -> bool:
    """Whether the cache stores and answers, for health checks: with Redis, Redis itself, as
    the per-process fallback answering for it does not make it up."""
    if isinstance(cache, ResilientRedisCache) and not cache.redis_reachable():
        return False
    cache.set("zspb:health", "1", 5)
    return bool(cache.get("zspb:health") == "1")
