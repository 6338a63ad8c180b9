"""The one HTTP client between the site and Discord's REST API (and journal webhooks).

Every outbound request goes through `DiscordClient._request`, so tests serve a single loopback
stand-in (tests/discord_standin.py) and production has one place where limits are honoured.

Limits are respected *before* sending, not discovered by 429s, because Discord bans an IP that
makes 10,000 invalid (401/403/429) requests in 10 minutes:

- the bot token's global 50 requests/second, shared by every worker and host through the
  cache (Redis in production): fixed 100 ms windows of at most 4 requests, so any sliding
  second holds at most 44 whatever the phase (a fixed 1 s window of 50 could let 100 through
  across a boundary);
- each route's bucket, learnt from `X-RateLimit-Bucket/Limit/Remaining/Reset(-After)` and
  kept in the cache: a request reserves its place before it is sent, the first request of an
  unknown route goes alone, and answers arriving out of order never raise the count, so
  concurrent workers stay within the bucket without a 429;
- a 429's `retry_after` (JSON body, else the `Retry-After` header), for every worker when the
  limit is `global`.

Waits are bounded by the caller (`max_wait`, `deadline`): a login check gives up in a second,
a background drain waits as long as its task may run. 5xx answers and transport errors are
retried with exponential back-off, then raised as `DiscordUnavailable` for the caller to keep
its work pending; a webhook post, the one request that is not safe to repeat, is retried only
when it never left (connection refused), else raised as `DiscordUnconfirmed`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from django.conf import settings
from django.core.cache import cache as default_cache
from django.core.cache.backends.base import BaseCache

log = logging.getLogger("zspb.discord")
# httpx logs every request URL at INFO, and a webhook URL carries the webhook's token.
logging.getLogger("httpx").setLevel(logging.WARNING)

USER_AGENT = "DiscordBot (https://github.com/zalypaspb/zalypaspb, 0.1)"
# Per attempt; a slow Discord must not hold a worker for long.
DEFAULT_TIMEOUT = 5.0
# Extra attempts after a 5xx or a transport error, with BACKOFF_BASE * 2**n seconds between.
DEFAULT_RETRIES = 2
BACKOFF_BASE = 0.5
# Longest single wait for a rate limit before giving up with DiscordRateLimited.
DEFAULT_MAX_WAIT = 30.0
# Consecutive 429s on one call before giving up (each is waited out; more means misbehaviour).
MAX_429_PER_CALL = 5

GLOBAL_PER_SECOND = 50
GLOBAL_WINDOW = 0.1
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

# Transport errors raised before any byte of the request left: safe to send again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

# Discord JSON error codes the callers act on.
UNKNOWN_GUILD = 10004
UNKNOWN_MEMBER = 10007
UNKNOWN_ROLE = 10011
UNKNOWN_WEBHOOK = 10015
MISSING_ACCESS = 50001
MISSING_PERMISSIONS = 50013
INVALID_WEBHOOK_TOKEN = 50027


class DiscordError(Exception):
    """A request to Discord failed; `status` and `code` are Discord's when it answered."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retry_after = retry_after

    def summary(self) -> str:
        bits = [self.message]
        if self.status is not None:
            bits.append(f"HTTP {self.status}")
        if self.code:
            bits.append(f"code {self.code}")
        return " / ".join(bits)


class DiscordUnavailable(DiscordError):
    """Down, slow or 5xx after the retries, or our own invalid-request budget is spent."""


class DiscordUnconfirmed(DiscordUnavailable):
    """No answer to a request that is not safe to repeat (a webhook post): it may or may not
    have been carried out, so it was not sent again."""


class DiscordRateLimited(DiscordError):
    """Waiting for the rate limit would exceed what the caller allowed."""


class DiscordAuthError(DiscordError):
    """401 or 403: a bad token, missing permission or a role above the bot's (hierarchy)."""


class DiscordNotFound(DiscordError):
    """404: unknown member (10007), role (10011), webhook (10015) or guild (10004)."""


class DiscordBadRequest(DiscordError):
    """Any other 4xx: our request was wrong; retrying it unchanged cannot help."""


@dataclass(frozen=True)
class Member:
    user_id: int
    roles: frozenset[int]
    bot: bool = False


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

    All values are wall-clock timestamps (time.time), the only clock processes on several
    hosts share. Operations are cache add/incr/decr/get/set, atomic on Redis and LocMem.
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
        windows_per_second = round(1 / GLOBAL_WINDOW)
        # A sliding second overlaps windows_per_second + 1 fixed windows.
        self.per_window = max(1, per_second // (windows_per_second + 1))

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
    def global_delay(self) -> float:
        """Take a slot of the global limit now (0.0) or say how long to wait for one."""
        now = self.clock()
        blocked = self.cache.get(self._k("global-until"))
        if blocked is not None and blocked > now:
            return float(blocked) - now
        window = int(now / GLOBAL_WINDOW)
        key = self._k("global", str(window))
        self.cache.add(key, 0, timeout=5)
        try:
            taken = self.cache.incr(key)
        except ValueError:  # expired between add and incr: try the next moment
            return 0.001
        if taken <= self.per_window:
            return 0.0
        return max((window + 1) * GLOBAL_WINDOW - now, 0.001)

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
        blocked = self.cache.get(self._k("route-until", route.key))
        if blocked is not None and blocked > now:
            return float(blocked) - now
        bucket = self.cache.get(self._k("route", route.key))
        state = self._bucket_state(bucket) if bucket is not None else (None, None, None)
        window, reset_at, limit = state
        if window is None or reset_at is None or limit is None:
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
        key = self._k("inflight", route.key)
        self.cache.add(key, 0, timeout=BUCKET_TTL)
        with contextlib.suppress(ValueError):
            self.cache.incr(key)

    def done(self, route: Route) -> None:
        with contextlib.suppress(ValueError):
            self.cache.decr(self._k("inflight", route.key))

    def _in_flight(self, route: Route) -> int:
        return max(int(self.cache.get(self._k("inflight", route.key)) or 0), 0)

    def scouted(self, route: Route) -> None:
        """The first request of a route has its answer: others may go (see bucket_delay)."""
        self.cache.delete(self._k("scout", route.key))

    def learn(self, route: Route, headers: Mapping[str, str], *, counted: bool = False) -> None:
        """Remember a response's bucket state for every worker.

        Answers to concurrent requests arrive in any order, so within one window the count
        left only ever goes down; a new window starts from the answer's count minus the
        requests still in flight, which it may not include yet.

        `counted`: the answered request still counts in flight (the client calls done()
        only after learning, so it is never invisible to a worker starting the provisional
        counter before its window is recorded); it is then not discounted twice.
        """
        me = 1 if counted else 0
        name = headers.get("x-ratelimit-bucket")
        remaining = _float(headers.get("x-ratelimit-remaining"))
        reset_after = _float(headers.get("x-ratelimit-reset-after"))
        if not name or remaining is None or reset_after is None:
            return
        now = self.clock()
        window = _float(headers.get("x-ratelimit-reset")) or now + reset_after
        limit_header = _float(headers.get("x-ratelimit-limit"))
        bucket = f"{name}:{route.major}"
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
                reset_at = now + reset_after
                if stored is None or reset_at < float(stored):
                    self.cache.set(reset_key, reset_at, timeout=BUCKET_TTL)
                self._remember_route(route, bucket)
                return
            in_flight = max(self._in_flight(route) - me, 0)
            limit = int(limit_header) if limit_header else max(limit or 0, int(remaining) + 1)
            left_key = self._k("left", bucket, f"{window:.3f}")
            self.cache.set_many(
                {
                    self._k("window", bucket): window,
                    self._k("reset", bucket): now + reset_after,
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

    def _remember_route(self, route: Route, bucket: str) -> None:
        # Only once the bucket's state is stored: a worker seeing the route's bucket must
        # find its window, or it would have nothing to reserve against.
        self.cache.set(self._k("route", route.key), bucket, timeout=BUCKET_TTL)

    def block(self, route: Route, retry_after: float, *, is_global: bool) -> None:
        """After a 429: nobody sends on this route (or at all, if global) until it passes."""
        until = self.clock() + retry_after
        ttl = self._ttl(retry_after) + 5
        if is_global:
            self.cache.set(self._k("global-until"), until, timeout=ttl)
        else:
            self.cache.set(self._k("route-until", route.key), until, timeout=ttl)

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


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def _code(body: Mapping[str, Any]) -> int | None:
    code = body.get("code")
    return code if isinstance(code, int) else None


def _member(body: Mapping[str, Any], *, user_id: int | None = None) -> Member:
    user = body.get("user")
    raw_id = user.get("id") if isinstance(user, dict) else None
    roles = body.get("roles")
    try:
        member_id = int(raw_id) if raw_id is not None else user_id
        role_ids = frozenset(int(r) for r in roles) if isinstance(roles, list) else None
    except (TypeError, ValueError):
        member_id, role_ids = None, None
    if member_id is None or role_ids is None:
        raise DiscordBadRequest("Discord answered a member without an id or roles")
    is_bot = bool(user.get("bot")) if isinstance(user, dict) else False
    return Member(user_id=member_id, roles=role_ids, bot=is_bot)


def webhook_route(url: str) -> Route:
    """Webhooks are limited per webhook: the id is the major parameter."""
    parts = [p for p in urlsplit(url).path.split("/") if p]
    try:
        webhook_id = parts[parts.index("webhooks") + 1]
    except (ValueError, IndexError):
        webhook_id = "unknown"
    return Route("webhook.execute", webhook_id)


class DiscordClient:
    """Synchronous Discord REST client; one per task run, closed when done."""

    def __init__(
        self,
        *,
        api_base: str,
        token: str | None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        max_wait: float = DEFAULT_MAX_WAIT,
        limits: RateLimits | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self.token = token
        self.retries = retries
        self.max_wait = max_wait
        self.limits = limits or RateLimits()
        self.sleep: Callable[[float], None] = time.sleep
        self._http = httpx.Client(
            timeout=timeout,
            headers={"User-Agent": USER_AGENT},
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DiscordClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Endpoints ---------------------------------------------------------------------------
    def member_get(self, *, guild_id: int, user_id: int, deadline: float | None = None) -> Member:
        response = self._request(
            "GET", f"/guilds/{guild_id}/members/{user_id}",
            route=Route("member.get", str(guild_id)), deadline=deadline,
        )
        return _member(_json(response), user_id=user_id)

    def guild_members(
        self, *, guild_id: int, after: int = 0, limit: int = 1000, deadline: float | None = None
    ) -> list[Member]:
        """One page of the member list, ordered by id (needs the GUILD_MEMBERS intent)."""
        response = self._request(
            "GET", f"/guilds/{guild_id}/members",
            route=Route("members.list", str(guild_id)), deadline=deadline,
            params={"limit": limit, "after": after},
        )
        body = response.json()
        if not isinstance(body, list):
            raise DiscordBadRequest("Discord answered a member list that is not a list")
        return [_member(item) for item in body if isinstance(item, dict)]

    def member_role_add(
        self, *, guild_id: int, user_id: int, role_id: int, reason: str,
        deadline: float | None = None,
    ) -> None:
        # One role at a time: a PATCH of the whole list would undo a moderator's concurrent edit.
        self._request(
            "PUT", f"/guilds/{guild_id}/members/{user_id}/roles/{role_id}",
            route=Route("member.roles", str(guild_id)), reason=reason, deadline=deadline,
        )

    def member_role_remove(
        self, *, guild_id: int, user_id: int, role_id: int, reason: str,
        deadline: float | None = None,
    ) -> None:
        self._request(
            "DELETE", f"/guilds/{guild_id}/members/{user_id}/roles/{role_id}",
            route=Route("member.roles", str(guild_id)), reason=reason, deadline=deadline,
        )

    def webhook_execute(
        self, *, url: str, content: str, username: str | None = None,
        deadline: float | None = None,
    ) -> None:
        """Post a message. `allowed_mentions` is always empty: journal text must never ping."""
        payload: dict[str, Any] = {"content": content, "allowed_mentions": {"parse": []}}
        if username:
            payload["username"] = username
        self._request(
            "POST", url, route=webhook_route(url), auth=False, json_body=payload,
            params={"wait": "true"}, deadline=deadline, repeatable=False,
        )

    # Machinery ---------------------------------------------------------------------------
    def _wait(
        self, delay: float, *, deadline: float | None, what: str,
        error: type[DiscordError] = DiscordRateLimited, status: int | None = None,
    ) -> None:
        if delay > self.max_wait or (
            deadline is not None and time.monotonic() + delay > deadline
        ):
            raise error(f"{what}: would wait {delay:.2f}s", status=status, retry_after=delay)
        self.sleep(delay)

    def _take_slot(self, route: Route, *, deadline: float | None) -> None:
        """Reserve a place in the route's bucket and the global limit.

        On return the request counts as in flight (call limits.done() once answered): it
        does from before its reservation, so a new window learnt meanwhile discounts it.
        """
        while True:
            self.limits.sending(route)
            if (delay := self.limits.bucket_delay(route)) <= 0:
                break
            self.limits.done(route)
            self._wait(delay, deadline=deadline, what=f"bucket {route.name}")
        try:
            while (delay := self.limits.global_delay()) > 0:
                self._wait(delay, deadline=deadline, what="global rate limit")
        except DiscordError:
            self.limits.done(route)
            self.limits.scouted(route)  # we may be the route's scout: let others go
            raise

    def _request(
        self,
        method: str,
        path_or_url: str,
        *,
        route: Route,
        auth: bool = True,
        reason: str | None = None,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        deadline: float | None = None,
        repeatable: bool = True,
    ) -> httpx.Response:
        """Send with limits, retries and back-off. `repeatable=False` (a webhook post): after a
        transport error that may follow the request reaching Discord, raise
        DiscordUnconfirmed instead of sending it again."""
        url = path_or_url if path_or_url.startswith(("http://", "https://")) else (
            self.api_base + path_or_url
        )
        headers: dict[str, str] = {}
        if auth:
            if not self.token:
                raise DiscordAuthError("no bot token configured")
            headers["Authorization"] = f"Bot {self.token}"
        if reason:
            # Discord takes 1-512 URL-encoded characters.
            headers["X-Audit-Log-Reason"] = quote(reason[:512], safe="")
        failures = 0
        limited = 0
        while True:
            if self.limits.invalid_budget_spent():
                raise DiscordUnavailable("invalid-request budget for these 10 minutes is spent")
            self._take_slot(route, deadline=deadline)
            try:
                response = self._http.request(
                    method, url, headers=headers, json=json_body, params=params
                )
            except httpx.TransportError as exc:
                self.limits.done(route)
                self.limits.scouted(route)
                if not repeatable and not isinstance(exc, _NOT_SENT):
                    # A read timeout or a dropped connection: Discord may have posted it.
                    raise DiscordUnconfirmed(f"{route.name}: {type(exc).__name__}") from None
                failures += 1
                if failures > self.retries:
                    raise DiscordUnavailable(
                        f"{route.name}: {type(exc).__name__}"
                    ) from None
                self._wait(BACKOFF_BASE * 2 ** (failures - 1), deadline=deadline,
                           what=f"{route.name}: {type(exc).__name__}", error=DiscordUnavailable)
                continue
            try:
                self.limits.learn(route, response.headers, counted=True)
            finally:
                self.limits.done(route)
            self.limits.scouted(route)
            status = response.status_code
            if status == 429:
                limited += 1
                self._rate_limited(route, response, limited=limited)
                continue
            if status >= 500:
                failures += 1
                if failures > self.retries:
                    raise DiscordUnavailable(f"{route.name} failed", status=status)
                self._wait(BACKOFF_BASE * 2 ** (failures - 1), deadline=deadline,
                           what=f"{route.name} failed", error=DiscordUnavailable, status=status)
                continue
            if status < 400:
                return response
            body = _json(response)
            code = _code(body)
            message = str(body.get("message") or response.reason_phrase)[:200]
            if status in (401, 403):
                self.limits.count_invalid()
                raise DiscordAuthError(f"{route.name}: {message}", status=status, code=code)
            if status == 404:
                raise DiscordNotFound(f"{route.name}: {message}", status=status, code=code)
            raise DiscordBadRequest(f"{route.name}: {message}", status=status, code=code)

    def _rate_limited(self, route: Route, response: httpx.Response, *, limited: int) -> None:
        body = _json(response)
        headers = response.headers
        retry_after = _float(str(body["retry_after"])) if "retry_after" in body else None
        if retry_after is None:
            retry_after = _float(headers.get("retry-after"))
        if retry_after is None:
            retry_after = _float(headers.get("x-ratelimit-reset-after"))
        if retry_after is None:
            retry_after = 1.0
        is_global = body.get("global") is True or (
            headers.get("x-ratelimit-global", "").lower() == "true"
        )
        # "shared" 429s are another app's doing and do not count against our IP.
        if headers.get("x-ratelimit-scope") != "shared":
            self.limits.count_invalid()
        self.limits.block(route, retry_after, is_global=is_global)
        log.warning("Discord 429 on %s: retry after %.3fs%s", route.name, retry_after,
                    " (global)" if is_global else "")
        if limited >= MAX_429_PER_CALL:
            raise DiscordRateLimited(f"{route.name}: {limited} rate limits in a row",
                                     status=429, retry_after=retry_after)


def discord_enabled() -> bool:
    return bool(settings.DISCORD_ENABLED and settings.DISCORD_BOT_TOKEN
                and settings.DISCORD_GUILD_ID)


def discord_client(
    *,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    max_wait: float = DEFAULT_MAX_WAIT,
) -> DiscordClient:
    """A client configured from settings; webhooks work without a bot token."""
    return DiscordClient(
        api_base=settings.DISCORD_API_BASE or "https://discord.com/api/v10",
        token=settings.DISCORD_BOT_TOKEN,
        timeout=timeout,
        retries=retries,
        max_wait=max_wait,
    )
