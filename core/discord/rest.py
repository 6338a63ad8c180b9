"""The one HTTP client between the site and Discord's REST API (and journal webhooks).

Every outbound request goes through `DiscordClient._request`, so tests serve a single loopback
stand-in (tests/discord_standin.py) and production has one place where limits are honoured.

Limits are respected *before* sending, not discovered by 429s, because Discord bans an IP that
makes 10,000 invalid (401/403/429) requests in 10 minutes: the global 50 requests/second, each
route's bucket and every 429's `retry_after` (JSON body, else the `Retry-After` header), shared
by every worker and host through the cache. The bookkeeping is core/discord/limits.py.

Waits are bounded by the caller (`max_wait`, `deadline`): a login check gives up in a second,
a background drain waits as long as its task may run. 5xx answers and transport errors are
retried with exponential back-off, then raised as `DiscordUnavailable` for the caller to keep
its work pending; a webhook post, the one request that is not safe to repeat, is retried only
when it never left (connection refused), else raised as `DiscordUnconfirmed`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from django.conf import settings

from core.discord.limits import RateLimits, Route, header_seconds

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
                self.limits.learn(route, response.headers, counted=True,
                                  limited=response.status_code == 429)
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
        retry_after = header_seconds(str(body["retry_after"])) if "retry_after" in body else None
        if retry_after is None:
            retry_after = header_seconds(headers.get("retry-after"))
        if retry_after is None:
            retry_after = header_seconds(headers.get("x-ratelimit-reset-after"))
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
