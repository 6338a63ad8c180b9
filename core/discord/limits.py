"""Discord's rate limits, kept by every worker and host together through the cache.

The REST client (core/discord/rest.py) asks here before each request and reports each answer:

- the bot token's global 50 requests/second: a sliding log of the last second's requests in
  Redis, checked and written by one script with Redis's own clock, at most GLOBAL_PER_SECOND -
  GLOBAL_MARGIN in any sliding second whatever the phase (a fixed 1 s window of 50 could let
  100 through across a boundary) and all of them to a steady sender;
- each route's bucket, learnt from `X-RateLimit-Bucket/Limit/Remaining/Reset(-After)`: a
  request reserves its place before it is sent, the first request of an unknown route goes
  alone, answers arriving out of order never raise the count, and a 429 never ends a window
  (see learn), so concurrent workers stay within the bucket without a 429;
- a 429's `retry_after`, for every worker when the limit is `global` (see block);
- the count of invalid (401/403/429) answers, which Discord bans an IP for.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from django.core.cache import cache as default_cache
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache

from core.cache import ResilientRedisCache, count_in_window

GLOBAL_PER_SECOND = 50
# Kept below Discord's figure: the log holds when a request was reserved, Discord counts when
# it arrives, and a loaded host delays some requests between the two more than others, so a
# second of arrivals can hold a request or two more than any second of reservations.
GLOBAL_MARGIN = 2
GLOBAL_SPAN = 1.0
# Two answers whose X-RateLimit-Reset differ by less than this belong to the same window.
WINDOW_SLACK = 0.05
# Bucket state outlives its window, so the next window starts from a known limit.
BUCKET_TTL = 3600
# Waits of 1 ms for another worker to finish recording an answer; past that, record anyway.
LOCK_SPINS = 100
# A lone first request on an unknown route is waited for at most this long.
SCOUT_TTL = 15
# Once a known window is over and the next one's requests are used up, look again this soon.
PROVISIONAL_WAIT = 0.05
PROVISIONAL_TTL = 2
# 429s and 401/403s counted per 10 minutes; past this the client refuses to send. Discord bans
# the IP at 10,000; stopping at half leaves room for the bot, which shares the IP.
INVALID_BUDGET = 5_000
INVALID_PERIOD = 600

CACHE_PREFIX = "zspb:discord"

# The global limit's check, atomic in Redis. KEYS: the log (request ids scored by the time
# they were let through, in microseconds of Redis's clock), a global 429's block. ARGV: the
# most let through in a span, the span in microseconds, this request's id. Returns 0 (go,
# logged) or the microseconds to wait: the block's rest, else until the oldest entry is a
# span old. An entry exactly a span old no longer counts, as in Discord's sliding second.
_GLOBAL_SCRIPT = """
local blocked = redis.call('PTTL', KEYS[2])
if blocked > 0 then return blocked * 1000 end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local span = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - span)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
    redis.call('ZADD', KEYS[1], now, ARGV[3])
    redis.call('PEXPIRE', KEYS[1], math.floor(span / 1000) + 1000)
    return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tonumber(oldest[2]) + span - now
"""
# The log without Redis lives in a per-process cache: one lock for the process's threads.
_LOCAL_LOG_LOCK = threading.Lock()


@dataclass(frozen=True)
class Route:
    """A rate-limit route: Discord keys buckets by route plus its major parameter."""

    name: str
    major: str

    @property
    def key(self) -> str:
        return f"{self.name}:{self.major}"


class RateLimits:
    """Rate-limit state shared by every worker through the cache.

    Bucket values are wall-clock timestamps (time.time), the only clock processes on several
    hosts share; operations there are cache add/incr/decr/get/set, atomic on Redis and
    LocMem. The global limit runs on Redis's clock inside Redis (see global_delay).
    """

    def __init__(
        self,
        *,
        cache: BaseCache | None = None,
        per_second: int = GLOBAL_PER_SECOND,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cache = cache or default_cache
        self.clock = clock
        self.per_second = max(1, per_second - GLOBAL_MARGIN)

    def _k(self, *parts: str) -> str:
        return ":".join((CACHE_PREFIX, *parts))

    @staticmethod
    def _ttl(seconds: float) -> int:
        """A cache timeout in whole seconds, rounded up.

        Redis keeps whole seconds only (Django truncates, and 0 means "do not keep"), so a
        fractional TTL must round up, never down, to last at least as long as asked.
        """
        return max(1, math.ceil(seconds))

    # Global limit ------------------------------------------------------------------------
    def _redis(self) -> ResilientRedisCache | None:
        # django.core.cache.cache is a proxy to the default backend, not the backend itself.
        backend = caches["default"] if self.cache is default_cache else self.cache
        return backend if isinstance(backend, ResilientRedisCache) else None

    def global_delay(self) -> float:
        """Take a slot of the global limit now (0.0) or say how long to wait for one.

        One round trip: a script reads a global 429's block and the log of the last second,
        and either adds this request to the log or answers when its oldest entry leaves the
        second. Redis's clock (TIME) stamps every entry, so hosts whose clocks disagree still
        share one second.
        """
        backend = self._redis()
        if backend is None:
            return self._global_delay_here()
        log_key = backend.make_and_validate_key(self._k("global-log"))
        block_key = backend.make_and_validate_key(self._k("global-until"))
        span_us = round(GLOBAL_SPAN * 1_000_000)

        def on_redis() -> float:
            waited = backend.redis_client().eval(
                _GLOBAL_SCRIPT, 2, log_key, block_key, self.per_second, span_us,
                secrets.token_hex(8))
            return max(int(waited), 1000) / 1_000_000 if int(waited) > 0 else 0.0

        return backend.on_redis(on_redis, self._global_delay_here)

    def _global_delay_here(self) -> float:
        """global_delay without Redis (the embedded default's per-process cache, or Redis
        unreachable): the same log in this process's cache, under a process-wide lock.

        Its keys are not Redis's: the outage's probe may send any of these calls to Redis,
        where a GET of the script's sorted set would raise, and a SET would replace it.
        """
        with _LOCAL_LOG_LOCK:
            now = self.clock()
            blocked = self.cache.get(self._k("global-until-here"))
            if isinstance(blocked, float) and blocked > now:
                return blocked - now
            log_key = self._k("global-log-here")
            recent: list[float] = [float(t) for t in self.cache.get(log_key) or []
                                   if t > now - GLOBAL_SPAN]
            if len(recent) >= self.per_second:
                return max(min(recent) + GLOBAL_SPAN - now, 0.001)
            self.cache.set(log_key, [*recent, now], timeout=self._ttl(GLOBAL_SPAN) + 1)
            return 0.0

    # Buckets -----------------------------------------------------------------------------
    # Per bucket: the window the server last told us about (its X-RateLimit-Reset), when it
    # ends on our clock, the bucket's limit, and a counter of requests left in that window,
    # decremented *before* sending (a reservation) so concurrent workers share it. When the
    # known window is over, a provisional counter for the next one admits at most `limit`
    # requests until an answer tells us the new window.
    def _bucket_state(self, bucket: str) -> tuple[float | None, float | None, int | None]:
        keys = [self._k(k, bucket) for k in ("window", "reset", "limit")]
        got = self.cache.get_many(keys)
        window, reset_at, limit = (got.get(k) for k in keys)
        return window, reset_at, limit

    def bucket_delay(self, route: Route) -> float:
        """Reserve one request in the route's bucket (0.0) or say how long to wait first.

        The caller counts the request in flight (`sending`) *before* asking, and calls
        `done` if told to wait: an answer revealing a new window, learnt by another worker
        meanwhile, then discounts the reservation (see learn) although it is not sent yet.
        """
        now = self.clock()
        until_key, route_key = self._k("route-until", route.key), self._k("route", route.key)
        got = self.cache.get_many([until_key, route_key])
        blocked, bucket = got.get(until_key), got.get(route_key)
        if blocked is not None and blocked > now:
            return float(blocked) - now
        state = self._bucket_state(bucket) if bucket is not None else (None, None, None)
        window, reset_at, limit = state
        if bucket is None or window is None or reset_at is None or limit is None:
            # Unknown route (or its state is gone): one request goes alone and its answer
            # tells every worker the bucket and its limit; the others wait for it instead
            # of guessing.
            if self.cache.add(self._k("scout", route.key), 1, timeout=SCOUT_TTL):
                return 0.0
            return PROVISIONAL_WAIT
        # The clock is read after the state, itself read after the caller counted us in
        # flight: whoever starts the provisional counter below has then either counted us
        # or made us see the window as over too (reset_at only ever comes earlier, learn).
        now = self.clock()
        if now < reset_at:
            key = self._k("left", bucket, f"{window:.3f}")
            wait = reset_at - now
        else:
            key = self._k("next", bucket, f"{window:.3f}")
            # Short-lived: should no answer reveal the new window (answers without bucket
            # headers), the next window's allowance starts again instead of locking us out.
            # In flight counts this very request (the caller's), which the decrement takes.
            others = max(self._in_flight(route) - 1, 0)
            self.cache.add(key, int(limit) - others, timeout=self._ttl(PROVISIONAL_TTL))
            wait = PROVISIONAL_WAIT  # until an answer reveals the new window
        try:
            left = self.cache.decr(key)
        except ValueError:
            # The counter expired between add and decr (or was never kept): refuse and look
            # again shortly, rather than send without a reservation.
            return max(min(wait, PROVISIONAL_WAIT), 0.001)
        return 0.0 if left >= 0 else max(wait, 0.001)

    def sending(self, route: Route) -> None:
        """Count a request in flight on the route (call done() when it has an answer)."""
        # One round trip on Redis, where add() then incr() take three.
        count_in_window(self.cache, self._k("inflight", route.key), BUCKET_TTL)

    def done(self, route: Route) -> None:
        with contextlib.suppress(ValueError):
            self.cache.decr(self._k("inflight", route.key))

    def _in_flight(self, route: Route) -> int:
        return max(int(self.cache.get(self._k("inflight", route.key)) or 0), 0)

    def scouted(self, route: Route) -> None:
        """The first request of a route has its answer: others may go (see bucket_delay)."""
        self.cache.delete(self._k("scout", route.key))

    def learn(self, route: Route, headers: Mapping[str, str], *, counted: bool = False,
              limited: bool = False) -> None:
        """Remember a response's bucket state for every worker.

        Answers to concurrent requests arrive in any order, so within one window the count
        left only ever goes down; a new window starts from the answer's count minus the
        requests still in flight, which it may not include yet.

        `counted`: the answered request still counts in flight (the client calls done()
        only after learning, so it is never invisible to a worker starting the provisional
        counter before its window is recorded); it is then not discounted twice.

        `limited` (a 429): the answer may lower the count of its window but neither ends the
        window earlier nor starts one. A 429's Reset-After is the wait for whatever refused
        it, which need not be this bucket's window: a global or shared 429 (or the stand-in's
        scripted ones) says 0 left, reset after `retry_after`, under the X-RateLimit-Reset of
        a window the bucket keeps counting for longer. Taken as the window's end it made the
        window look over early (and, the earliest end being kept, for good): the next window's
        provisional allowance of `limit` then went into the same window after its requests,
        and the last one was refused just before the true reset. The wait itself is kept
        by block().
        """
        me = 1 if counted else 0
        name = headers.get("x-ratelimit-bucket")
        remaining = header_seconds(headers.get("x-ratelimit-remaining"))
        reset_after = header_seconds(headers.get("x-ratelimit-reset-after"))
        if not name or remaining is None or reset_after is None:
            return
        now = self.clock()
        window = header_seconds(headers.get("x-ratelimit-reset")) or now + reset_after
        limit_header = header_seconds(headers.get("x-ratelimit-limit"))
        bucket = f"{name}:{route.major}"
        reset_at = now + reset_after
        if self._nothing_to_learn(route, bucket, window=window, remaining=remaining,
                                  reset_at=reset_at, limited=limited):
            return
        lock = self._k("lock", bucket)
        # A short critical section: answers of concurrent requests must not overwrite each
        # other's view (a new window lost here would let the next one overshoot).
        for _ in range(LOCK_SPINS):
            if self.cache.add(lock, 1, timeout=self._ttl(2)):
                break
            time.sleep(0.001)
        try:
            known, _, limit = self._bucket_state(bucket)
            if known is not None and window < known - WINDOW_SLACK:
                return  # a late answer from a window that is over
            if known is not None and window <= known + WINDOW_SLACK:
                key = self._k("left", bucket, f"{known:.3f}")
                current = self.cache.get(key)
                if current is None:
                    self.cache.add(key, int(remaining), timeout=BUCKET_TTL)
                elif int(current) > int(remaining):
                    # Lower by the difference, never overwrite: workers reserve (decrement)
                    # concurrently, and a plain set would hand their places out again.
                    with contextlib.suppress(ValueError):
                        self.cache.decr(key, int(current) - int(remaining))
                # Every answer's now + reset_after is at or after the window's true end;
                # the earliest is the tightest. Never later: a worker that already treated
                # the window as over must not be followed by one reserving in it.
                reset_key = self._k("reset", bucket)
                stored = self.cache.get(reset_key)
                if not limited and (stored is None or reset_at < float(stored)):
                    self.cache.set(reset_key, reset_at, timeout=BUCKET_TTL)
                self._remember_route(route, bucket)
                return
            if limited:
                # Not a window to reserve against (see above): the requests since the known
                # window stay counted where they are (its count, or the provisional one).
                return
            in_flight = max(self._in_flight(route) - me, 0)
            limit = int(limit_header) if limit_header else max(limit or 0, int(remaining) + 1)
            left_key = self._k("left", bucket, f"{window:.3f}")
            self.cache.set_many(
                {
                    self._k("window", bucket): window,
                    self._k("reset", bucket): reset_at,
                    self._k("limit", bucket): limit,
                    left_key: int(remaining) - in_flight,
                },
                timeout=BUCKET_TTL,
            )
            # A reservation counted in flight after the read above may still have seen the
            # previous window: discount what arrived meanwhile too.
            late = max(self._in_flight(route) - me, 0) - in_flight
            if late > 0:
                with contextlib.suppress(ValueError):
                    self.cache.decr(left_key, late)
            self._remember_route(route, bucket)
        finally:
            self.cache.delete(lock)

    def _nothing_to_learn(self, route: Route, bucket: str, *, window: float, remaining: float,
                          reset_at: float, limited: bool) -> bool:
        """Whether this answer would change nothing learn() keeps, read without its lock.

        Most answers do not: they belong to the window already known, whose count our own
        reservations have already lowered, and end it no earlier than known. One read (an
        MGET, so a consistent view) instead of the lock's round trips; writing nothing cannot
        undo another worker's write, and a window another worker records after this read
        makes this answer a late one, which learn() would ignore too.
        """
        keys = {part: self._k(part, bucket) for part in ("window", "reset")}
        keys["left"] = self._k("left", bucket, f"{window:.3f}")
        keys["route"] = self._k("route", route.key)
        got = self.cache.get_many(list(keys.values()))
        known, stored, left = (got.get(keys[p]) for p in ("window", "reset", "left"))
        if known is None:
            return False
        if window < known - WINDOW_SLACK:
            return True  # a late answer from a window that is over: learn() ignores it
        if (f"{known:.3f}" != f"{window:.3f}" or left is None or int(left) > int(remaining)
                or got.get(keys["route"]) != bucket):
            return False
        return limited or (stored is not None and reset_at >= float(stored))

    def _remember_route(self, route: Route, bucket: str) -> None:
        # Only once the bucket's state is stored: a worker seeing the route's bucket must
        # find its window, or it would have nothing to reserve against.
        self.cache.set(self._k("route", route.key), bucket, timeout=BUCKET_TTL)

    def block(self, route: Route, retry_after: float, *, is_global: bool) -> None:
        """After a 429: nobody sends on this route (or at all, if global) until it passes."""
        until = self.clock() + retry_after
        ttl = self._ttl(retry_after) + 5
        if not is_global:
            self.cache.set(self._k("route-until", route.key), until, timeout=ttl)
            return

        def here() -> None:
            self.cache.set(self._k("global-until-here"), until, timeout=ttl)

        backend = self._redis()
        if backend is None:
            here()
            return
        # On Redis the block is a key that lives retry_after (to the millisecond), read by
        # the global limit's script on the same clock as its log.
        redis_key = backend.make_and_validate_key(self._k("global-until"))

        def on_redis() -> None:
            backend.redis_client().set(redis_key, 1, px=max(1, math.ceil(retry_after * 1000)))

        backend.on_redis(on_redis, here)

    # Invalid requests --------------------------------------------------------------------
    def _invalid_key(self) -> str:
        return self._k("invalid", str(int(self.clock() // INVALID_PERIOD)))

    def count_invalid(self) -> None:
        key = self._invalid_key()
        self.cache.add(key, 0, timeout=INVALID_PERIOD * 2)
        try:
            self.cache.incr(key)
        except ValueError:
            self.cache.set(key, 1, timeout=INVALID_PERIOD * 2)

    def invalid_budget_spent(self) -> bool:
        return int(self.cache.get(self._invalid_key()) or 0) >= INVALID_BUDGET



def header_seconds(value: str | None) -> float | None:
    """A header's non-negative number of seconds (or epoch time); None if absent or invalid."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None
