"""The confirmation after a link: the bot notices the member became linked and says so."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from botapp.link_watch import LinkWatcher
from tests.botapp.conftest import (
    INVOKER_ID,
    FakeInteraction,
    FakeUser,
    Scripted,
    StubApi,
    async_test,
    stub_api,
)

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
ROLES = f"/members/{INVOKER_ID}/roles"


def _linked(stub: StubApi, linked: bool) -> None:
    stub.on("GET", ROLES, {"discord_id": str(INVOKER_ID), "linked": linked,
                           "wanted": [], "managed": []})


def _stats(stub: StubApi) -> None:
    stub.on("GET", f"/stats/{INVOKER_ID}", {
        "id": 1, "username": "new_member", "role": "User", "date_joined": "2030-01-01T00:00:00Z",
        "invited_by": None, "invites_created": 0, "invites_used": 0, "invite_quota": 2,
        "invites_left_this_month": 2, "keys_redeemed": 0, "discord_linked": True,
        "discord_username": "x", "banned": False, "ban_reason": None, "ban_ends_at": None,
        "subscriptions": [],
    })


def _watch(watcher: LinkWatcher, interaction: FakeInteraction, minutes: int = 15) -> None:
    watcher.watch(user=interaction.user, interaction=interaction,
                  expires_at=NOW + timedelta(minutes=minutes))


@async_test
async def test_confirms_on_the_interaction_once_linked() -> None:
    clock = [NOW]
    async with stub_api() as (stub, api):
        watcher = LinkWatcher(api, now=lambda: clock[0])
        interaction = FakeInteraction()
        _watch(watcher, interaction)
        _linked(stub, False)
        await watcher.poll_once()
        assert interaction.followup.sent == [] and INVOKER_ID in watcher.pending
        _linked(stub, True)
        _stats(stub)
        clock[0] += timedelta(minutes=3)
        await watcher.poll_once()
        await watcher.poll_once()  # nothing left to do: confirmed once only
    sent = interaction.reply
    assert sent.ephemeral
    assert "now linked to your site account **new\\_member**" in sent.content
    assert watcher.pending == {}
    assert [r.path for r in stub.requests] == [ROLES, ROLES, f"/stats/{INVOKER_ID}"]


@async_test
async def test_falls_back_to_a_dm_when_the_interaction_expired() -> None:
    async with stub_api() as (stub, api):
        watcher = LinkWatcher(api, now=lambda: NOW)
        interaction = FakeInteraction()
        interaction.followup.expired = True
        _watch(watcher, interaction)
        _linked(stub, True)
        await watcher.poll_once()  # no stats answer: confirmed without the name
    assert interaction.user.dms == [
        "Your Discord account is now linked to your site account. Your roles follow the site "
        "from now on."]


@async_test
async def test_closed_dms_are_not_an_error() -> None:
    async with stub_api() as (stub, api):
        watcher = LinkWatcher(api, now=lambda: NOW)
        interaction = FakeInteraction(FakeUser(INVOKER_ID, dm_fails=True))
        interaction.followup.expired = True
        _watch(watcher, interaction)
        _linked(stub, True)
        await watcher.poll_once()
    assert watcher.pending == {}


@async_test
async def test_expired_codes_are_dropped_without_asking() -> None:
    async with stub_api() as (stub, api):
        watcher = LinkWatcher(api, now=lambda: NOW + timedelta(minutes=16))
        _watch(watcher, FakeInteraction())
        await watcher.poll_once()
    assert watcher.pending == {}
    assert stub.requests == []


@async_test
async def test_site_down_keeps_watching() -> None:
    async with stub_api() as (stub, api):
        watcher = LinkWatcher(api, now=lambda: NOW)
        _watch(watcher, FakeInteraction())
        stub.on("GET", ROLES, Scripted(503, raw=b"down"))
        await watcher.poll_once()
    assert INVOKER_ID in watcher.pending


@async_test
async def test_a_new_code_replaces_the_pending_one() -> None:
    async with stub_api() as (_, api):
        watcher = LinkWatcher(api, now=lambda: NOW)
        first, second = FakeInteraction(), FakeInteraction()
        _watch(watcher, first)
        _watch(watcher, second)
    assert list(watcher.pending) == [INVOKER_ID]
    assert watcher.pending[INVOKER_ID].interaction is second


@async_test
async def test_background_loop_runs_and_stops() -> None:
    async with stub_api() as (stub, api):
        watcher = LinkWatcher(api, interval=0.01)
        interaction = FakeInteraction()
        watcher.watch(user=interaction.user, interaction=interaction,
                      expires_at=datetime.now(timezone.utc) + timedelta(minutes=15))
        _linked(stub, True)
        watcher.start()
        watcher.start()  # idempotent: on_ready fires again after reconnects
        for _ in range(200):
            if interaction.followup.sent:
                break
            await asyncio.sleep(0.01)
        await watcher.stop()
    assert len(interaction.followup.sent) == 1
