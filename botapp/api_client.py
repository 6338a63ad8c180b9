"""The one HTTP client of the site's bot API (/api/bot/...).

Every call carries the bot's bearer token and, for commands, the invoking Discord user's id:
the site decides what that person may do. Answers come back as small typed records; every
failure (an API error, a timeout, a refused connection, a malformed answer) as BotApiError, so
the cogs have exactly one thing to render.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, TypeVar

import aiohttp

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Codes the bot makes up for failures that never reached the site's error handler.
UNREACHABLE = "unreachable"
BAD_RESPONSE = "bad_response"
# A proxy (nginx) answering for a site that is down or restarting.
_GATEWAY_STATUSES = {502, 503, 504}


class BotApiError(Exception):
    """An answer other than 200, or no usable answer at all.

    `status` is None when no HTTP answer came back (connection refused, timeout).
    `retry_after` is in seconds, set on 429.
    """

    def __init__(self, code: str, message: str, status: int | None = None,
                 retry_after: float | None = None,
                 details: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.details: Mapping[str, Any] = details or {}

    @property
    def unreachable(self) -> bool:
        return self.code == UNREACHABLE


def parse_datetime(value: str) -> datetime:
    # fromisoformat accepts a trailing Z only from Python 3.11; production runs 3.10.
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _optional_datetime(value: str | None) -> datetime | None:
    return parse_datetime(value) if value else None


@dataclass(frozen=True)
class LinkCode:
    code: str
    expires_at: datetime


@dataclass(frozen=True)
class Redeemed:
    product: str
    product_name: str
    expires_at: datetime


@dataclass(frozen=True)
class GeneratedKeys:
    batch: str
    product: str
    duration_days: int
    codes: tuple[str, ...]


@dataclass(frozen=True)
class Ban:
    target_discord_id: int
    target_username: str
    reason: str
    created_at: datetime
    ends_at: datetime | None


@dataclass(frozen=True)
class Unban:
    target_discord_id: int
    target_username: str
    lifted_at: datetime


@dataclass(frozen=True)
class StatsSubscription:
    product: str
    product_name: str
    started_at: datetime
    expires_at: datetime
    active: bool


@dataclass(frozen=True)
class Stats:
    username: str
    role: str | None
    date_joined: datetime
    invited_by: str | None
    invites_created: int
    invites_used: int
    invite_quota: int | None
    invites_left_this_month: int | None
    keys_redeemed: int
    discord_username: str
    banned: bool
    ban_reason: str | None
    ban_ends_at: datetime | None
    subscriptions: tuple[StatsSubscription, ...]


@dataclass(frozen=True)
class MemberRoles:
    discord_id: int
    linked: bool
    managed: frozenset[int]


class BotApiClient:
    """Async client of /api/bot/; one aiohttp session, opened lazily inside the running loop."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> BotApiClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use: an aiohttp session belongs to the loop it was made in.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                headers={"Authorization": f"Bearer {self._token}",
                         "User-Agent": "ZalypaSPB-bot"},
            )
        return self._session

    async def _request(self, method: str, path: str, *, invoker: int | None = None,
                       body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        headers = {"X-Discord-User-Id": str(invoker)} if invoker is not None else {}
        url = f"{self.base_url}/bot{path}"
        try:
            async with self._client().request(method, url, json=body, headers=headers) as resp:
                status = resp.status
                raw = await resp.read()
                retry_header = resp.headers.get("Retry-After")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            # Refused, reset, DNS failure, TLS failure or the timeout: all mean "site down".
            logger.warning("site API unreachable on %s %s: %r", method, path, exc)
            raise BotApiError(UNREACHABLE, "The site could not be reached.") from exc
        payload = _json(raw)
        if status == 200:
            if not isinstance(payload, dict):
                raise BotApiError(BAD_RESPONSE, "The site sent an unreadable answer.", status)
            return payload
        raise _error(status, payload, retry_header)

    # The commands, each made with the rights of `invoker` (the Discord user who ran it).

    async def link_code(self, *, invoker: int, discord_username: str) -> LinkCode:
        data = await self._request("POST", "/link-codes", invoker=invoker,
                                   body={"discord_username": discord_username})
        return _parse(lambda: LinkCode(code=str(data["code"]),
                                       expires_at=parse_datetime(data["expires_at"])))

    async def redeem(self, *, invoker: int, key: str) -> Redeemed:
        data = await self._request("POST", "/redeem", invoker=invoker, body={"key": key})
        return _parse(lambda: Redeemed(product=str(data["product"]),
                                       product_name=str(data["product_name"]),
                                       expires_at=parse_datetime(data["expires_at"])))

    async def generate_keys(self, *, invoker: int, product: str, duration_days: int, count: int,
                            note: str = "") -> GeneratedKeys:
        data = await self._request("POST", "/keys", invoker=invoker, body={
            "product": product, "duration_days": duration_days, "count": count, "note": note,
        })
        return _parse(lambda: GeneratedKeys(batch=str(data["batch"]),
                                            product=str(data["product"]),
                                            duration_days=int(data["duration_days"]),
                                            codes=tuple(str(c) for c in data["codes"])))

    async def ban(self, *, invoker: int, target: int, reason: str,
                  duration_hours: int | None = None) -> Ban:
        body: dict[str, Any] = {"target_discord_id": str(target), "reason": reason}
        if duration_hours is not None:
            body["duration_hours"] = duration_hours
        data = await self._request("POST", "/bans", invoker=invoker, body=body)
        return _parse(lambda: Ban(target_discord_id=int(data["target_discord_id"]),
                                  target_username=str(data["target_username"]),
                                  reason=str(data["reason"]),
                                  created_at=parse_datetime(data["created_at"]),
                                  ends_at=_optional_datetime(data.get("ends_at"))))

    async def unban(self, *, invoker: int, target: int) -> Unban:
        data = await self._request("POST", "/unbans", invoker=invoker,
                                   body={"target_discord_id": str(target)})
        return _parse(lambda: Unban(target_discord_id=int(data["target_discord_id"]),
                                    target_username=str(data["target_username"]),
                                    lifted_at=parse_datetime(data["lifted_at"])))

    async def stats(self, *, invoker: int, target: int) -> Stats:
        data = await self._request("GET", f"/stats/{target}", invoker=invoker)
        return _parse(lambda: _stats(data))

    # Member look-ups and events: asked by the bot for itself, so no invoker and no per-user
    # throttle.

    async def member_roles(self, discord_id: int) -> MemberRoles:
        data = await self._request("GET", f"/members/{discord_id}/roles")
        return _parse(lambda: MemberRoles(
            discord_id=int(data["discord_id"]), linked=bool(data["linked"]),
            managed=frozenset(int(r) for r in data["managed"]),
        ))

    async def member_event(self, discord_id: int, event: Literal["join", "update"]) -> bool:
        data = await self._request("POST", f"/members/{discord_id}/events",
                                   body={"event": event})
        return _parse(lambda: bool(data["queued"]))


def _stats(data: dict[str, Any]) -> Stats:
    return Stats(
        username=str(data["username"]), role=data.get("role"),
        date_joined=parse_datetime(data["date_joined"]), invited_by=data.get("invited_by"),
        invites_created=int(data["invites_created"]), invites_used=int(data["invites_used"]),
        invite_quota=data.get("invite_quota"),
        invites_left_this_month=data.get("invites_left_this_month"),
        keys_redeemed=int(data["keys_redeemed"]),
        discord_username=str(data.get("discord_username") or ""),
        banned=bool(data["banned"]), ban_reason=data.get("ban_reason"),
        ban_ends_at=_optional_datetime(data.get("ban_ends_at")),
        subscriptions=tuple(
            StatsSubscription(product=str(s["product"]), product_name=str(s["product_name"]),
                              started_at=parse_datetime(s["started_at"]),
                              expires_at=parse_datetime(s["expires_at"]),
                              active=bool(s["active"]))
            for s in data["subscriptions"]
        ),
    )


def _parse(build: Callable[[], T]) -> T:
    """Build a record from a 200 answer; a missing or mistyped field is the site's bug."""
    try:
        return build()
    except (KeyError, TypeError, ValueError) as exc:
        logger.error("site API answer does not match the expected shape: %r", exc)
        raise BotApiError(BAD_RESPONSE, "The site sent an unexpected answer.", 200) from exc


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _retry_after(header: str | None, details: Mapping[str, Any]) -> float | None:
    for value in (header, details.get("retry_after")):
        try:
            if value is not None:
                return max(float(value), 0.0)
        except (TypeError, ValueError):
            continue
    return None


def _error(status: int, payload: Any, retry_header: str | None) -> BotApiError:
    shaped = (isinstance(payload, dict) and isinstance(payload.get("code"), str)
              and isinstance(payload.get("message"), str))
    if not shaped:
        if status in _GATEWAY_STATUSES:
            return BotApiError(UNREACHABLE, "The site is not answering.", status)
        return BotApiError(f"http_{status}", f"The site answered HTTP {status}.", status,
                           _retry_after(retry_header, {}) if status == 429 else None)
    details = payload.get("details")
    details = details if isinstance(details, dict) else {}
    retry_after = _retry_after(retry_header, details) if status == 429 else None
    return BotApiError(payload["code"], payload["message"], status, retry_after, details)
