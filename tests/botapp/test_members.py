"""Member events: managed roles converge to the site's wanted set, without toggling on the
bot's own edits, and roles the site does not manage are never touched."""

from __future__ import annotations

import asyncio
from typing import Any

import nextcord

from botapp.api_client import BotApiClient
from botapp.bot import ZspbBot
from botapp.cogs.members import REASON_JOIN, REASON_REVERT, Members
from botapp.roles import RecentRoleEdits, RoleConverger
from botapp.settings import load_settings
from tests.botapp.conftest import (
    TOKEN,
    FakeGuild,
    FakeMember,
    Scripted,
    StubApi,
    async_test,
    http_error,
    stub_api,
)

GUILD = 900
MEMBER = 333_333_333_333_333_333
USER, SUPPORT, LOADER = 10, 11, 20  # managed by the site
EVENT_WINNER = 30  # not managed: someone else's business
ABOVE_BOT = 40  # managed, but placed above the bot's role
MANAGED = [USER, SUPPORT, LOADER, ABOVE_BOT]


def _guild() -> FakeGuild:
    guild = FakeGuild(GUILD, bot_position=50)
    guild.role(USER, "User", 10)
    guild.role(SUPPORT, "Support", 11)
    guild.role(LOADER, "Loader", 5)
    guild.role(EVENT_WINNER, "Event winner", 3)
    guild.role(ABOVE_BOT, "Admin", 60)
    return guild


def _wanted(stub: StubApi, *wanted: int, member: int = MEMBER, linked: bool = True) -> None:
    stub.on("GET", f"/members/{member}/roles", {
        "discord_id": str(member), "linked": linked,
        "wanted": [str(role) for role in wanted], "managed": [str(role) for role in MANAGED],
    })
    stub.on("POST", f"/members/{member}/events", {"queued": linked})


def _cog(api: BotApiClient, recent: RecentRoleEdits | None = None) -> Members:
    return Members(api, RoleConverger(api, recent or RecentRoleEdits()), guild_id=GUILD)


def _held(member: FakeMember) -> set[int]:
    return {role.id for role in member.roles} - {GUILD}


def _calls(stub: StubApi) -> list[tuple[str, str, Any]]:
    return [(r.method, r.path, r.body) for r in stub.requests]


async def _manual(cog: Members, member: FakeMember, *, add: int = 0, remove: int = 0) -> None:
    """A moderator edits the member's roles by hand; the gateway reports it."""
    before = member.snapshot()
    if add:
        member.roles.append(member.guild.roles[add])
    if remove:
        member.roles = [role for role in member.roles if role.id != remove]
    # nextcord passes the cached member as `after`: the bot's edits land on it.
    await cog.on_member_update(before, member)


async def _echo_edits(cog: Members, member: FakeMember, before: FakeMember) -> None:
    """The gateway's member updates for each role edit the bot made, one event per request."""
    current = before.snapshot()
    for op, role_id, _reason, _atomic in member.edits:
        after = current.snapshot()
        if op == "add":
            after.roles.append(member.guild.roles[role_id])
        else:
            after.roles = [role for role in after.roles if role.id != role_id]
        await cog.on_member_update(current, after)
        current = after


@async_test
async def test_manual_grant_of_a_managed_role_is_reverted_and_reported() -> None:
    guild = _guild()
    member = guild.member(MEMBER, USER, EVENT_WINNER)
    async with stub_api() as (stub, api):
        _wanted(stub, USER)
        await _manual(_cog(api), member, add=SUPPORT)
    assert member.edits == [("remove", SUPPORT, REASON_REVERT, True)]
    assert _held(member) == {USER, EVENT_WINNER}
    assert _calls(stub) == [("GET", f"/members/{MEMBER}/roles", None),
                            ("POST", f"/members/{MEMBER}/events", {"event": "update"})]
    # The bot asks for itself: no invoker, so no per-user throttle on the site.
    assert "X-Discord-User-Id" not in stub.requests[0].headers


@async_test
async def test_manual_removal_of_a_wanted_role_is_reverted() -> None:
    guild = _guild()
    member = guild.member(MEMBER, USER, LOADER)
    async with stub_api() as (stub, api):
        _wanted(stub, USER, LOADER)
        await _manual(_cog(api), member, remove=LOADER)
    assert member.edits == [("add", LOADER, REASON_REVERT, True)]
    assert _held(member) == {USER, LOADER}


@async_test
async def test_the_bots_own_edits_do_not_toggle() -> None:
    guild = _guild()
    member = guild.member(MEMBER, USER)
    async with stub_api() as (stub, api):
        _wanted(stub, USER)
        cog = _cog(api)
        await _manual(cog, member, add=SUPPORT)
        assert member.edits == [("remove", SUPPORT, REASON_REVERT, True)]
        requests_before_echo = len(stub.requests)
        # Discord now reports the bot's removal: recognised, neither re-added nor re-checked.
        await cog.on_member_update(guild.member(MEMBER, USER, SUPPORT), member.snapshot())
        assert len(stub.requests) == requests_before_echo
        assert len(member.edits) == 1
        assert len(cog.converger.recent) == 0  # consumed, so it hides nothing later
        # The moderator insists: the same manual edit is reverted again.
        await _manual(cog, member, add=SUPPORT)
    assert [edit[:2] for edit in member.edits] == [("remove", SUPPORT), ("remove", SUPPORT)]
    assert _held(member) == {USER}


@async_test
async def test_echo_arriving_before_the_http_answer_is_recognised() -> None:
    guild = _guild()

    class EagerGateway(FakeMember):
        # The gateway event for an edit can arrive while the edit's request is in flight.
        async def add_roles(self, *roles: Any, reason: str | None = None,
                            atomic: bool = True) -> None:
            before = self.snapshot()
            await super().add_roles(*roles, reason=reason, atomic=atomic)
            await cog.on_member_update(before, self.snapshot())

    member = EagerGateway(guild, MEMBER, [guild.roles[GUILD]])
    async with stub_api() as (stub, api):
        _wanted(stub, USER, LOADER)
        cog = _cog(api)
        await cog.on_member_join(member)
    assert [edit[:2] for edit in member.edits] == [("add", USER), ("add", LOADER)]
    assert [call[:2] for call in _calls(stub)] == [
        ("GET", f"/members/{MEMBER}/roles"), ("POST", f"/members/{MEMBER}/events")]


@async_test
async def test_join_applies_the_wanted_roles_and_reports() -> None:
    guild = _guild()
    member = guild.member(MEMBER)
    async with stub_api() as (stub, api):
        _wanted(stub, USER, LOADER)
        cog = _cog(api)
        await cog.on_member_join(member)
        before = guild.member(MEMBER)
        await _echo_edits(cog, member, before)
    assert member.edits == [("add", USER, REASON_JOIN, True), ("add", LOADER, REASON_JOIN, True)]
    assert _held(member) == {USER, LOADER}
    # One look-up and the join report; the echoes of both additions cost nothing.
    assert _calls(stub) == [("GET", f"/members/{MEMBER}/roles", None),
                            ("POST", f"/members/{MEMBER}/events", {"event": "join"})]


@async_test
async def test_join_of_an_unlinked_member_is_reported_and_strips_managed_roles() -> None:
    guild = _guild()
    member = guild.member(MEMBER, LOADER, EVENT_WINNER)
    async with stub_api() as (stub, api):
        _wanted(stub, linked=False)
        await _cog(api).on_member_join(member)
    assert member.edits == [("remove", LOADER, REASON_JOIN, True)]
    assert _held(member) == {EVENT_WINNER}
    assert stub.last().body == {"event": "join"}


@async_test
async def test_unmanaged_roles_are_never_touched() -> None:
    guild = _guild()
    member = guild.member(MEMBER, USER)
    async with stub_api() as (stub, api):
        _wanted(stub, USER)
        cog = _cog(api)
        # A role the site does not manage: checked once (nothing to do, nothing reported)...
        await _manual(cog, member, add=EVENT_WINNER)
        assert [call[:2] for call in _calls(stub)] == [("GET", f"/members/{MEMBER}/roles")]
        # ...and, with the managed set now known, not even looked up again.
        await _manual(cog, member, remove=EVENT_WINNER)
        await _manual(cog, member, add=EVENT_WINNER)
    assert len(stub.requests) == 1
    assert member.edits == []
    assert _held(member) == {USER, EVENT_WINNER}


@async_test
async def test_a_role_above_the_bot_is_skipped_and_reported() -> None:
    guild = _guild()
    member = guild.member(MEMBER, USER, LOADER)
    async with stub_api() as (stub, api):
        _wanted(stub, USER, LOADER, ABOVE_BOT)
        await _manual(_cog(api), member, remove=LOADER)
    assert member.edits == [("add", LOADER, REASON_REVERT, True)]
    assert ABOVE_BOT not in _held(member)
    # Drift the bot could not fix: the site's own sync will try and journal the refusal.
    assert stub.last().body == {"event": "update"}


@async_test
async def test_discord_refusing_an_edit_leaves_no_stale_echo_record() -> None:
    guild = _guild()
    member = guild.member(MEMBER, USER)
    member.fail_with = http_error(nextcord.Forbidden, 403, 50013, "Missing Permissions")
    async with stub_api() as (stub, api):
        _wanted(stub, USER)
        cog = _cog(api)
        await _manual(cog, member, add=SUPPORT)
    assert member.edits == [("remove", SUPPORT, REASON_REVERT, True)]
    assert SUPPORT in _held(member)
    assert len(cog.converger.recent) == 0
    assert stub.last().body == {"event": "update"}


@async_test
async def test_site_down_changes_nothing() -> None:
    guild = _guild()
    member = guild.member(MEMBER, USER)
    async with stub_api() as (stub, api):
        stub.on_any(Scripted(503, raw=b"down"))
        await _manual(_cog(api), member, add=SUPPORT)
        await _cog(api).on_member_join(guild.member(MEMBER + 1))
    assert member.edits == []
    assert _held(member) == {USER, SUPPORT}


@async_test
async def test_mixed_diff_is_not_taken_for_an_echo() -> None:
    guild = _guild()
    member = guild.member(MEMBER, USER)
    recent = RecentRoleEdits()
    recent.record(MEMBER, LOADER, "add")  # the bot added LOADER a moment ago
    async with stub_api() as (stub, api):
        _wanted(stub, USER, LOADER)
        cog = _cog(api, recent)
        before = member.snapshot()
        member.roles += [guild.roles[LOADER], guild.roles[SUPPORT]]  # ...and someone SUPPORT
        await cog.on_member_update(before, member)
    assert member.edits == [("remove", SUPPORT, REASON_REVERT, True)]


@async_test
async def test_other_guilds_bots_and_non_role_updates_are_ignored() -> None:
    other = FakeGuild(901)
    other.role(SUPPORT, "Support", 11)
    guild = _guild()
    async with stub_api() as (stub, api):
        _wanted(stub, USER)
        cog = _cog(api)
        await _manual(cog, other.member(MEMBER), add=SUPPORT)
        await cog.on_member_join(other.member(MEMBER))
        robot = guild.member(MEMBER)
        robot.bot = True
        await _manual(cog, robot, add=SUPPORT)
        nick = guild.member(MEMBER, USER)
        await cog.on_member_update(nick.snapshot(), nick.snapshot())  # a nickname change
    assert stub.requests == []


def test_echo_records_expire() -> None:
    now = [100.0]
    recent = RecentRoleEdits(ttl=60, clock=lambda: now[0])
    recent.record(1, USER, "add")
    now[0] += 61
    assert not recent.consume_own(1, {USER}, set())
    recent.record(1, USER, "add")
    assert not recent.consume_own(1, set(), {USER})  # a removal is not the bot's addition
    assert not recent.consume_own(2, {USER}, set())  # nor another member's
    assert recent.consume_own(1, {USER}, set())
    assert not recent.consume_own(1, {USER}, set())  # consumed once
    assert not recent.consume_own(1, set(), set())


@async_test
async def test_gateway_events_reach_the_members_cog() -> None:
    guild = _guild()
    guild.id = 123456789012345678  # the configured guild
    guild.roles[guild.id] = guild.roles.pop(GUILD)
    member = FakeMember(guild, MEMBER, [guild.roles[guild.id]])
    async with stub_api() as (stub, api):
        _wanted(stub, USER)
        bot = ZspbBot(load_settings({"DISCORD_BOT_TOKEN": "a.b.c",
                                     "DISCORD_GUILD_ID": str(guild.id),
                                     "BOT_API_TOKEN": TOKEN}), api=api)
        bot.dispatch("member_join", member)  # what nextcord does on GUILD_MEMBER_ADD
        for _ in range(200):
            if len(stub.requests) == 2:
                break
            await asyncio.sleep(0.01)
        await bot.close()
    assert member.edits == [("add", USER, REASON_JOIN, True)]
    assert stub.last().body == {"event": "join"}
