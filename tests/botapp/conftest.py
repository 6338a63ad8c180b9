"""Doubles for the bot's tests: a real HTTP stub of the site's bot API, fake interactions and
fake guild members. Nothing here talks to Discord.

The bot is async; without an async test plugin each test runs its scenario with asyncio.run
(through `async_test`), one fresh event loop per test.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import nextcord
from aiohttp import web

from botapp.api_client import BotApiClient

TOKEN = "stub-token-" + "x" * 32
INVOKER_ID = 111_111_111_111_111_111
TARGET_ID = 222_222_222_222_222_222


def async_test(fn: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Any]:
    """Run an async test body in its own event loop (no pytest-asyncio in this project)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Scripted:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    raw: bytes | None = None


def api_error(status: int, code: str, message: str, **details: Any) -> Scripted:
    """An answer in the site's one error shape."""
    headers = {}
    if status == 429 and "retry_after" in details:
        headers["Retry-After"] = str(details["retry_after"])
    return Scripted(status, {"code": code, "message": message, "details": details}, headers)


class StubApi:
    """The site's bot API as scripted answers, served over real HTTP on 127.0.0.1."""

    def __init__(self, log: list[Any] | None = None) -> None:
        self.answers: dict[tuple[str, str], Scripted] = {}
        self.requests: list[Recorded] = []
        self.log = log if log is not None else []  # shared with fake interactions: ordering
        self.url = ""
        self._runner: web.AppRunner | None = None

    def on(self, method: str, path: str, answer: Scripted | dict[str, Any]) -> None:
        self.answers[(method, path)] = answer if isinstance(answer, Scripted) else Scripted(
            200, answer)

    def on_any(self, answer: Scripted) -> None:
        self.answers[("*", "*")] = answer

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        path = request.path.removeprefix("/api/bot")
        self.requests.append(Recorded(request.method, path, dict(request.headers), body))
        self.log.append(("api", request.method, path))
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"code": "not_authenticated", "message": "Log in.",
                                      "details": {}}, status=401)
        answer = self.answers.get((request.method, path)) or self.answers.get(("*", "*"))
        if answer is None:
            return web.json_response({"code": "not_found", "message": "Not found.",
                                      "details": {}}, status=404)
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if answer.raw is not None:
            return web.Response(status=answer.status, body=answer.raw, headers=answer.headers)
        return web.json_response(answer.body, status=answer.status, headers=answer.headers)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/api"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def last(self) -> Recorded:
        assert self.requests, "the bot made no API request"
        return self.requests[-1]


@asynccontextmanager
async def stub_api(*, timeout: float = 5.0,
                   log: list[Any] | None = None) -> AsyncIterator[tuple[StubApi, BotApiClient]]:
    stub = StubApi(log)
    await stub.start()
    try:
        async with BotApiClient(stub.url, TOKEN, timeout=timeout) as api:
            yield stub, api
    finally:
        await stub.stop()


def closed_port_url() -> str:
    """A loopback URL where nothing listens: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api"


# Interactions ---------------------------------------------------------------------------------

class FakeUser:
    def __init__(self, user_id: int, name: str = "someone", *, dm_fails: bool = False,
                 log: list[Any] | None = None) -> None:
        self.id = user_id
        self.name = name
        self.bot = False
        self.mention = f"<@{user_id}>"
        self.dms: list[str] = []
        self._dm_fails = dm_fails

    async def send(self, content: str) -> None:
        if self._dm_fails:
            raise http_error(nextcord.Forbidden, 403, 50007, "Cannot send messages to this user")
        self.dms.append(content)


class FakeResponse:
    def __init__(self, log: list[Any]) -> None:
        self.log = log
        self.defers: list[bool] = []

    async def defer(self, *, ephemeral: bool = False, with_message: bool = False) -> None:
        self.defers.append(ephemeral)
        self.log.append(("defer", ephemeral))


@dataclass
class Sent:
    content: str
    ephemeral: bool
    file: Any = None


class FakeFollowup:
    def __init__(self, log: list[Any], *, expired: bool = False) -> None:
        self.log = log
        self.sent: list[Sent] = []
        self.expired = expired

    async def send(self, content: str | None = None, *, ephemeral: bool = False,
                   file: Any = None, **kwargs: Any) -> None:
        if self.expired:
            raise http_error(nextcord.HTTPException, 401, 50027, "Invalid Webhook Token")
        self.sent.append(Sent(content or "", ephemeral, file))
        self.log.append(("followup", ephemeral))


class FakeInteraction:
    """Records what a command does with its interaction: defer, then follow-ups."""

    def __init__(self, user: FakeUser | None = None, *, log: list[Any] | None = None) -> None:
        self.log = log if log is not None else []
        self.user = user or FakeUser(INVOKER_ID, "invoker")
        self.response = FakeResponse(self.log)
        self.followup = FakeFollowup(self.log)

    @property
    def reply(self) -> Sent:
        assert len(self.followup.sent) == 1, self.followup.sent
        return self.followup.sent[0]


class _Response:
    def __init__(self, status: int) -> None:
        self.status = status
        self.reason = "stub"


def http_error(kind: type[nextcord.HTTPException], status: int, code: int,
               message: str) -> nextcord.HTTPException:
    # nextcord reads only .status and .reason of the response it is given.
    return kind(cast(Any, _Response(status)), {"code": code, "message": message})


# Guild members --------------------------------------------------------------------------------

class FakeRole:
    def __init__(self, guild: FakeGuild, role_id: int, name: str, position: int, *,
                 managed: bool = False) -> None:
        self.guild = guild
        self.id = role_id
        self.name = name
        self.position = position
        self.managed = managed

    def is_default(self) -> bool:
        return self.id == self.guild.id

    def is_assignable(self) -> bool:
        # nextcord's rule: not @everyone, not an integration role, below the bot's top role.
        return (not self.is_default() and not self.managed
                and self.position < self.guild.me.top_role.position)

    def __repr__(self) -> str:
        return f"<FakeRole {self.name}>"


class Permissions:
    def __init__(self, manage_roles: bool) -> None:
        self.manage_roles = manage_roles


class FakeMember:
    def __init__(self, guild: FakeGuild, member_id: int, roles: list[FakeRole] | None = None,
                 *, bot: bool = False) -> None:
        self.guild = guild
        self.id = member_id
        self.roles = list(roles or [])
        self.bot = bot
        # The bot never edits roles (the site's role sync does): tests assert this stays empty.
        self.edits: list[tuple[str, int, str | None, bool]] = []
        self.guild_permissions = Permissions(True)

    @property
    def top_role(self) -> FakeRole:
        return max(self.roles, key=lambda role: role.position)

    def snapshot(self) -> FakeMember:
        clone = copy.copy(self)
        clone.roles = list(self.roles)
        return clone

    async def add_roles(self, *roles: FakeRole, reason: str | None = None,
                        atomic: bool = True) -> None:
        for role in roles:
            self.edits.append(("add", role.id, reason, atomic))
            self.roles.append(role)

    async def remove_roles(self, *roles: FakeRole, reason: str | None = None,
                           atomic: bool = True) -> None:
        for role in roles:
            self.edits.append(("remove", role.id, reason, atomic))
            self.roles = [held for held in self.roles if held.id != role.id]


class FakeGuild:
    def __init__(self, guild_id: int = 900, *, bot_position: int = 50) -> None:
        self.id = guild_id
        self.owner_id = 1
        self.roles: dict[int, FakeRole] = {}
        self.role(guild_id, "@everyone", 0)
        bot_role = self.role(999, "ZSPB bot", bot_position, managed=True)
        self.me = FakeMember(self, 42, [self.roles[guild_id], bot_role], bot=True)

    def role(self, role_id: int, name: str, position: int, *, managed: bool = False) -> FakeRole:
        self.roles[role_id] = FakeRole(self, role_id, name, position, managed=managed)
        return self.roles[role_id]

    def get_role(self, role_id: int) -> FakeRole | None:
        return self.roles.get(role_id)

    def member(self, member_id: int, *role_ids: int) -> FakeMember:
        return FakeMember(self, member_id, [self.roles[self.id]]
                          + [self.roles[role_id] for role_id in role_ids])
