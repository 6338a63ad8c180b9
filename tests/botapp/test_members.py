"""Member events: the bot reports joins and role edits touching a managed role to the site and
never edits a role itself (the site's role sync is the one writer)."""

from __future__ import annotations

import asyncio
from typing import Any

from botapp.api_client import BotApiClient
from botapp.bot import ZspbBot
from botapp.cogs.members import ManagedRoles, Members
from botapp.settings import load_settings
from tests.botapp.conftest import (
    TOKEN,
    FakeGuild,
    FakeMember,
    Scripted,
    StubApi,
    async_test,
    stub_api,
)

GUILD = 900
MEMBER = 333_333_333_333_333_333
USER, SUPPORT, LOADER = 10, 11, 20  # managed by the site
EVENT_WINNER = 30  # not managed: someone else's business
MANAGED = [USER, SUPPORT, LOADER]


def _guild() -> FakeGuild:
    guild = FakeGuild(GUILD, bot_position=50)
    guild.role(USER, "User", 10)
    guild.role(SUPPORT, "Support", 11)
    guild.role(LOADER, "Loader", 5)
    guild.role(EVENT_WINNER, "Event winner", 3)
    return guild


def _site(stub: StubApi, *, member: int = MEMBER, linked: bool = True) -> None:
    stub.on("GET", f"/members/{member}/roles", {
        "discord_id": str(member), "linked": linked, "wanted": [],
        "managed": [str(role) for role in MANAGED],
    })
    stub.on("POST", f"/members/{member}/events", {"queued": linked})


def _cog(api: BotApiClient, managed: ManagedRoles | None = None) -> Members:
    return Members(api, managed or ManagedRoles(), guild_id=GUILD)


def _calls(stub: StubApi) -> list[tuple[str, str, Any]]:
    return [(r.method, r.path, r.body) for r in stub.requests]


async def _manual(cog: Members, member: FakeMember, *, add: int = 0, remove: int = 0) -> None:
    """Someone edits the member's roles; the gateway reports it."""
    before = member.snapshot()
    if add:
        member.roles.append(member.guild.roles[add])
    if remove:
        member.roles = [role for role in member.roles if role.id != remove]
    await cog.on_member_update(before, member)


REPORT_UPDATE = ("POST", f"/members/{MEMBER}/events", {"event": "update"})


@async_test
async def test_join_is_reported_and_no_role_is_edited() -> None:
    member = _guild().member(MEMBER, LOADER)
    async with stub_api() as (stub, api):
        _site(stub)
        await _cog(api).on_member_join(member)
    assert _calls(stub) == [("POST", f"/members/{MEMBER}/events", {"event": "join"})]
    # The bot asks for itself: no invoker, so no per-user throttle on the site.
    assert "X-Discord-User-Id" not in stub.requests[0].headers
    assert member.edits == []


@async_test
async def test_edit_of_a_managed_role_is_reported_not_reverted() -> None:
    member = _guild().member(MEMBER, USER)
    async with stub_api() as (stub, api):
        _site(stub)
        cog = _cog(api)
        await _manual(cog, member, add=SUPPORT)
        await _manual(cog, member, remove=USER)
    # The managed set is read once, then each edit is one report; the site's sync decides.
    assert _calls(stub) == [("GET", f"/members/{MEMBER}/roles", None),
                            REPORT_UPDATE, REPORT_UPDATE]
    assert member.edits == []


@async_test
async def test_unmanaged_roles_are_not_the_sites_business() -> None:
    member = _guild().member(MEMBER, USER)
    async with stub_api() as (stub, api):
        _site(stub)
        cog = _cog(api)
        await _manual(cog, member, add=EVENT_WINNER)
        await _manual(cog, member, remove=EVENT_WINNER)
    assert _calls(stub) == [("GET", f"/members/{MEMBER}/roles", None)]
    assert member.edits == []


@async_test
async def test_the_managed_set_is_read_again_once_stale() -> None:
    now = [0.0]
    managed = ManagedRoles(ttl=300, clock=lambda: now[0])
    member = _guild().member(MEMBER, USER)
    async with stub_api() as (stub, api):
        _site(stub)
        cog = _cog(api, managed)
        await _manual(cog, member, add=EVENT_WINNER)
        now[0] += 301  # staff may have made EVENT_WINNER a product's role meanwhile
        await _manual(cog, member, remove=EVENT_WINNER)
    assert [call[:2] for call in _calls(stub)] == [("GET", f"/members/{MEMBER}/roles")] * 2


@async_test
async def test_startup_check_primes_the_managed_set() -> None:
    managed = ManagedRoles()
    managed.remember(frozenset(MANAGED))
    member = _guild().member(MEMBER, USER)
    async with stub_api() as (stub, api):
        _site(stub)
        await _manual(_cog(api, managed), member, add=LOADER)
    assert _calls(stub) == [REPORT_UPDATE]


@async_test
async def test_site_down_is_logged_and_nothing_is_edited() -> None:
    guild = _guild()
    member = guild.member(MEMBER, USER)
    async with stub_api() as (stub, api):
        stub.on_any(Scripted(503, raw=b"down"))
        cog = _cog(api)
        await _manual(cog, member, add=SUPPORT)  # managed set unknown: reported anyway
        await cog.on_member_join(guild.member(MEMBER + 1))
    assert [call[:2] for call in _calls(stub)] == [
        ("GET", f"/members/{MEMBER}/roles"), ("POST", f"/members/{MEMBER}/events"),
        ("POST", f"/members/{MEMBER + 1}/events")]
    assert member.edits == []


@async_test
async def test_other_guilds_bots_and_non_role_updates_are_ignored() -> None:
    other = FakeGuild(901)
    other.role(SUPPORT, "Support", 11)
    guild = _guild()
    async with stub_api() as (stub, api):
        _site(stub)
        cog = _cog(api)
        await _manual(cog, other.member(MEMBER), add=SUPPORT)
        await cog.on_member_join(other.member(MEMBER))
        robot = guild.member(MEMBER)
        robot.bot = True
        await _manual(cog, robot, add=SUPPORT)
        nick = guild.member(MEMBER, USER)
        await cog.on_member_update(nick.snapshot(), nick.snapshot())  # a nickname change
    assert stub.requests == []


@async_test
async def test_gateway_events_reach_the_members_cog() -> None:
    guild = _guild()
    guild.id = 123456789012345678  # the configured guild
    guild.roles[guild.id] = guild.roles.pop(GUILD)
    member = FakeMember(guild, MEMBER, [guild.roles[guild.id]])
    async with stub_api() as (stub, api):
        _site(stub)
        bot = ZspbBot(load_settings({"DISCORD_BOT_TOKEN": "a.b.c",
                                     "DISCORD_GUILD_ID": str(guild.id),
                                     "BOT_API_TOKEN": TOKEN}), api=api)
        bot.dispatch("member_join", member)  # what nextcord does on GUILD_MEMBER_ADD
        for _ in range(200):
            if stub.requests:
                break
            await asyncio.sleep(0.01)
        await bot.close()
    assert stub.last().body == {"event": "join"}
    assert member.edits == []
