"""Every slash command through its cog, the real API client and a stub API over real HTTP.

For each command: success, rights refused, unlinked invoker, bad input, throttled, and the
site down (refused connection, timeout, proxy error). The fake interaction and the stub share
one log, so the order "defer, then the API, then the follow-up" is checked, not assumed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nextcord
import pytest

from botapp.api_client import BotApiClient
from botapp.bot import ZspbBot
from botapp.cogs.keys import Keys
from botapp.cogs.linking import Linking
from botapp.cogs.moderation import Moderation
from botapp.cogs.stats import StatsCog
from botapp.link_watch import LinkWatcher
from botapp.replies import BOT_REFUSED_TEXT, NOT_LINKED_TEXT, UNREACHABLE_TEXT
from botapp.settings import load_settings
from tests.botapp.conftest import (
    INVOKER_ID,
    TARGET_ID,
    TOKEN,
    FakeInteraction,
    FakeUser,
    Scripted,
    StubApi,
    api_error,
    async_test,
    closed_port_url,
    http_error,
    stub_api,
)

EXPIRES = "2030-01-01T12:15:00Z"
EXPIRES_TS = "<t:1893500100:"
CODES = [f"ZSPB-AAAAA-BBBBB-CCCCC-{i:05d}" for i in range(12)]
FORBIDDEN = api_error(403, "forbidden", "You do not have permission to do that.")
NOT_LINKED = api_error(403, "not_linked", "Your Discord account is not linked.")

Invoke = Callable[[BotApiClient, FakeInteraction], Awaitable[None]]


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    invoke: Invoke
    ok: dict[str, Any]
    expect: tuple[str, ...]  # in the success reply

    def __str__(self) -> str:
        return self.name


def _stats_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "id": 7, "username": "member", "role": "User", "date_joined": "2029-01-01T00:00:00Z",
        "invited_by": "admin", "invites_created": 2, "invites_used": 1, "invite_quota": 2,
        "invites_left_this_month": 1, "keys_redeemed": 3, "discord_linked": True,
        "discord_username": "member", "banned": False, "ban_reason": None, "ban_ends_at": None,
        "subscriptions": [{"product": "loader", "product_name": "Loader",
                           "started_at": "2029-12-01T00:00:00Z", "expires_at": EXPIRES,
                           "active": True}],
    }
    body.update(overrides)
    return body


def _code(api: BotApiClient, it: FakeInteraction) -> Awaitable[None]:
    cog = Linking(api, LinkWatcher(api), site_url="https://zspb.example.com")
    return cog.code(it)


CASES = [
    Case("code", "POST", "/link-codes", _code,
         {"code": "ABCD-EFGH", "expires_at": EXPIRES},
         ("`ABCD-EFGH`", "https://zspb.example.com/discord", f"{EXPIRES_TS}R>")),
    Case("redeem", "POST", "/redeem",
         lambda api, it: Keys(api).redeem(it, "ZSPB-11111-22222-33333-44444"),
         {"product": "loader", "product_name": "Loader", "expires_at": EXPIRES},
         ("Key redeemed", "**Loader**", f"{EXPIRES_TS}f>")),
    Case("generate_key", "POST", "/keys",
         lambda api, it: Keys(api).generate_key(it, "loader", 30, 2, "promo"),
         {"batch": "0b6f0c1e-0000-4000-8000-000000000001", "product": "loader",
          "duration_days": 30, "codes": CODES[:2]},
         ("Generated 2 keys", "30 days", f"```\n{CODES[0]}\n{CODES[1]}\n```")),
    Case("ban", "POST", "/bans",
         lambda api, it: Moderation(api).ban(it, FakeUser(TARGET_ID), "cheating", 24),
         {"target_discord_id": str(TARGET_ID), "target_username": "target",
          "reason": "cheating", "created_at": "2030-01-01T12:00:00Z", "ends_at": EXPIRES},
         (f"Banned <@{TARGET_ID}>", "**target**", "cheating", f"until {EXPIRES_TS}f>")),
    Case("unban", "POST", "/unbans",
         lambda api, it: Moderation(api).unban(it, FakeUser(TARGET_ID)),
         {"target_discord_id": str(TARGET_ID), "target_username": "target",
          "lifted_at": "2030-01-01T12:00:00Z"},
         (f"Lifted the ban of <@{TARGET_ID}>", "**target**")),
    Case("stats", "GET", f"/stats/{INVOKER_ID}",
         lambda api, it: StatsCog(api).stats(it, None),
         _stats_body(),
         ("**member** (User)", "Keys redeemed: 3", "**Loader**: active until")),
]
# Commands that act for a linked account; /code is the one open to unlinked invokers.
LINKED_CASES = [case for case in CASES if case.name != "code"]


async def _run(case: Case, answer: Scripted | dict[str, Any], *, timeout: float = 5.0,
               ) -> tuple[StubApi, FakeInteraction]:
    log: list[Any] = []
    async with stub_api(log=log, timeout=timeout) as (stub, api):
        stub.on(case.method, case.path, answer)
        interaction = FakeInteraction(log=log)
        await case.invoke(api, interaction)
    return stub, interaction


def _assert_answered_once_ephemeral(interaction: FakeInteraction) -> str:
    assert interaction.response.defers == [True]
    assert interaction.log[0] == ("defer", True), "defer must come before any API call"
    assert interaction.log[-1] == ("followup", True)
    return interaction.reply.content


@pytest.mark.parametrize("case", CASES, ids=str)
@async_test
async def test_success(case: Case) -> None:
    stub, interaction = await _run(case, case.ok)
    text = _assert_answered_once_ephemeral(interaction)
    assert [entry[0] for entry in interaction.log] == ["defer", "api", "followup"]
    request = stub.last()
    assert (request.method, request.path) == (case.method, case.path)
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["X-Discord-User-Id"] == str(INVOKER_ID)
    for expected in case.expect:
        assert expected in text, text


@pytest.mark.parametrize("case", LINKED_CASES, ids=str)
@async_test
async def test_rights_refused_by_the_site(case: Case) -> None:
    _, interaction = await _run(case, FORBIDDEN)
    assert _assert_answered_once_ephemeral(interaction) == (
        "You do not have permission to do that.")


@pytest.mark.parametrize("case", LINKED_CASES, ids=str)
@async_test
async def test_unlinked_invoker_is_told_to_run_code(case: Case) -> None:
    _, interaction = await _run(case, NOT_LINKED)
    text = _assert_answered_once_ephemeral(interaction)
    assert text == NOT_LINKED_TEXT
    assert "/code" in text


@pytest.mark.parametrize("case", LINKED_CASES, ids=str)
@async_test
async def test_banned_invoker(case: Case) -> None:
    _, interaction = await _run(case, api_error(403, "user_banned", "This account is banned."))
    assert _assert_answered_once_ephemeral(interaction) == "This account is banned."


@async_test
async def test_code_for_an_already_linked_account() -> None:
    case = CASES[0]
    _, interaction = await _run(case, api_error(
        409, "discord_already_linked", "This Discord account is already linked to member."))
    assert _assert_answered_once_ephemeral(interaction) == (
        "This Discord account is already linked to member.")


@pytest.mark.parametrize("case", CASES, ids=str)
@async_test
async def test_throttled_says_when_to_retry(case: Case) -> None:
    _, interaction = await _run(case, api_error(429, "rate_limited", "Too many attempts.",
                                                retry_after=42))
    text = _assert_answered_once_ephemeral(interaction)
    assert re.search(r"try again <t:\d+:R> \(in about 42 s\)", text), text


@pytest.mark.parametrize("case", CASES, ids=str)
@async_test
async def test_site_refusing_connections(case: Case) -> None:
    log: list[Any] = []
    interaction = FakeInteraction(log=log)
    async with BotApiClient(closed_port_url(), TOKEN, timeout=5) as api:
        await case.invoke(api, interaction)
    assert _assert_answered_once_ephemeral(interaction) == UNREACHABLE_TEXT


@pytest.mark.parametrize("case", CASES, ids=str)
@async_test
async def test_site_timing_out(case: Case) -> None:
    _, interaction = await _run(case, Scripted(200, case.ok, delay=0.5), timeout=0.1)
    assert _assert_answered_once_ephemeral(interaction) == UNREACHABLE_TEXT


@pytest.mark.parametrize("case", CASES, ids=str)
@async_test
async def test_proxy_error_page_means_unreachable(case: Case) -> None:
    _, interaction = await _run(case, Scripted(502, raw=b"<html>502 Bad Gateway</html>"))
    assert _assert_answered_once_ephemeral(interaction) == UNREACHABLE_TEXT


@pytest.mark.parametrize("case", CASES, ids=str)
@async_test
async def test_site_error(case: Case) -> None:
    _, interaction = await _run(case, api_error(500, "internal_error", "Something went wrong."))
    assert "The site hit an error" in _assert_answered_once_ephemeral(interaction)


@pytest.mark.parametrize("case", CASES, ids=str)
@async_test
async def test_wrong_bot_token(case: Case) -> None:
    log: list[Any] = []
    async with stub_api(log=log) as (stub, _):
        stub.on(case.method, case.path, case.ok)
        async with BotApiClient(stub.url, "wrong-token-" + "y" * 32) as api:
            interaction = FakeInteraction(log=log)
            await case.invoke(api, interaction)
    assert _assert_answered_once_ephemeral(interaction) == BOT_REFUSED_TEXT


@pytest.mark.parametrize("case", CASES, ids=str)
@async_test
async def test_unexpected_answer_shape(case: Case) -> None:
    _, interaction = await _run(case, {"surprise": True})
    assert _assert_answered_once_ephemeral(interaction) == "The site sent an unexpected answer."


@pytest.mark.parametrize("case", CASES, ids=str)
@async_test
async def test_no_api_call_when_the_interaction_cannot_be_deferred(case: Case) -> None:
    async with stub_api() as (stub, api):
        stub.on(case.method, case.path, case.ok)
        interaction = FakeInteraction()

        async def expired(**kwargs: Any) -> None:
            raise http_error(nextcord.NotFound, 404, 10062, "Unknown interaction")

        interaction.response.defer = expired  # type: ignore[method-assign]
        await case.invoke(api, interaction)
    assert stub.requests == []
    assert interaction.followup.sent == []


# Bad input: the bot passes it through unchanged and renders the site's refusal. -------------

def _invalid(field: str, msg: str) -> Scripted:
    return api_error(422, "invalid_input", "Some fields are invalid.", errors=[
        {"loc": ["body", "payload", field], "msg": msg, "type": "value_error"}])


@pytest.mark.parametrize(("count", "msg"), [
    (0, "Input should be greater than or equal to 1"),
    (1000, "Input should be less than or equal to 100"),
])
@async_test
async def test_generate_key_count_out_of_range(count: int, msg: str) -> None:
    async with stub_api() as (stub, api):
        stub.on("POST", "/keys", _invalid("count", msg))
        interaction = FakeInteraction()
        await Keys(api).generate_key(interaction, "loader", 30, count, "")
    assert stub.last().body == {"product": "loader", "duration_days": 30, "count": count,
                                "note": ""}
    text = interaction.reply.content
    assert text == f"Some fields are invalid.\n- `count`: {msg}"


@async_test
async def test_generate_key_unknown_product() -> None:
    async with stub_api() as (stub, api):
        stub.on("POST", "/keys", api_error(404, "not_found",
                                           "No active product with the slug 'nope'."))
        interaction = FakeInteraction()
        await Keys(api).generate_key(interaction, "nope", 30, 1, "")
    assert interaction.reply.content == "No active product with the slug 'nope'."


@async_test
async def test_redeem_unknown_and_used_keys() -> None:
    async with stub_api() as (stub, api):
        interaction = FakeInteraction()
        stub.on("POST", "/redeem", api_error(404, "key_invalid", "This key does not exist."))
        await Keys(api).redeem(interaction, "not a key")
        second = FakeInteraction()
        stub.on("POST", "/redeem", api_error(
            409, "key_unavailable", "This key has already been redeemed, revoked or has expired."))
        await Keys(api).redeem(second, "ZSPB-11111-22222-33333-44444")
    assert stub.requests[0].body == {"key": "not a key"}
    assert interaction.reply.content == "This key does not exist."
    assert second.reply.content.startswith("This key has already been redeemed")


@async_test
async def test_ban_blank_reason_and_unlinked_target() -> None:
    async with stub_api() as (stub, api):
        blank = FakeInteraction()
        stub.on("POST", "/bans", _invalid("reason", "String should match pattern"))
        await Moderation(api).ban(blank, FakeUser(TARGET_ID), "   ", None)
        stranger = FakeInteraction()
        stub.on("POST", "/bans", api_error(404, "not_found",
                                           "That Discord user has not linked a site account."))
        await Moderation(api).ban(stranger, FakeUser(TARGET_ID), "spam", None)
    # No duration: a permanent ban, so the field is left out rather than sent as null.
    assert stub.requests[0].body == {"target_discord_id": str(TARGET_ID), "reason": "   "}
    assert "`reason`" in blank.reply.content
    assert stranger.reply.content == "That Discord user has not linked a site account."


@async_test
async def test_ban_rank_violation_and_unban_of_unbanned() -> None:
    async with stub_api() as (stub, api):
        rank = FakeInteraction()
        stub.on("POST", "/bans", api_error(
            403, "rank_violation", "You can only act on users and roles ranked below your own."))
        await Moderation(api).ban(rank, FakeUser(TARGET_ID), "spam", 1)
        unbanned = FakeInteraction()
        stub.on("POST", "/unbans", api_error(409, "not_banned", "This user is not banned."))
        await Moderation(api).unban(unbanned, FakeUser(TARGET_ID))
    assert stub.requests[0].body["duration_hours"] == 1
    assert rank.reply.content.startswith("You can only act on users")
    assert unbanned.reply.content == "This user is not banned."


@async_test
async def test_permanent_ban_reply() -> None:
    async with stub_api() as (stub, api):
        stub.on("POST", "/bans", {"target_discord_id": str(TARGET_ID),
                                  "target_username": "t_*x*_", "reason": "**loud**",
                                  "created_at": "2030-01-01T12:00:00Z", "ends_at": None})
        interaction = FakeInteraction()
        await Moderation(api).ban(interaction, FakeUser(TARGET_ID), "**loud**", None)
    text = interaction.reply.content
    assert "permanently" in text
    # User text is escaped: it cannot bold, italicise or break the reply.
    assert "\\*\\*loud\\*\\*" in text and "t\\_\\*x\\*\\_" in text


@async_test
async def test_stats_of_another_member() -> None:
    async with stub_api() as (stub, api):
        stub.on("GET", f"/stats/{TARGET_ID}", _stats_body(
            username="target", banned=True, ban_reason="spam", subscriptions=[]))
        interaction = FakeInteraction()
        await StatsCog(api).stats(interaction, FakeUser(TARGET_ID))
    assert stub.last().headers["X-Discord-User-Id"] == str(INVOKER_ID)
    text = interaction.reply.content
    assert "**target**" in text and "**Banned**: spam" in text
    assert "No subscriptions." in text and "/redeem" not in text


@async_test
async def test_stats_of_an_unlinked_member_and_without_rights() -> None:
    async with stub_api() as (stub, api):
        missing = FakeInteraction()
        stub.on("GET", f"/stats/{TARGET_ID}", api_error(
            404, "not_found", "That Discord user has not linked a site account."))
        await StatsCog(api).stats(missing, FakeUser(TARGET_ID))
        refused = FakeInteraction()
        stub.on("GET", f"/stats/{TARGET_ID}", FORBIDDEN)
        await StatsCog(api).stats(refused, FakeUser(TARGET_ID))
    assert missing.reply.content == "That Discord user has not linked a site account."
    assert refused.reply.content == "You do not have permission to do that."


@async_test
async def test_many_keys_come_as_a_file() -> None:
    async with stub_api() as (stub, api):
        stub.on("POST", "/keys", {"batch": "b-1", "product": "loader", "duration_days": 1,
                                  "codes": CODES})
        interaction = FakeInteraction()
        await Keys(api).generate_key(interaction, "loader", 1, 12, "")
    reply = interaction.reply
    assert reply.ephemeral
    assert "Generated 12 keys" in reply.content and "1 day each" in reply.content
    assert CODES[0] not in reply.content
    assert reply.file is not None and reply.file.filename == "keys-loader-b-1.txt"
    assert reply.file.fp.read().decode().split() == CODES


@async_test
async def test_ten_keys_still_inline() -> None:
    async with stub_api() as (stub, api):
        stub.on("POST", "/keys", {"batch": "b-2", "product": "loader", "duration_days": 7,
                                  "codes": CODES[:10]})
        interaction = FakeInteraction()
        await Keys(api).generate_key(interaction, "loader", 7, 10, "")
    assert interaction.reply.file is None
    assert all(code in interaction.reply.content for code in CODES[:10])


@async_test
async def test_code_registers_the_pending_link() -> None:
    async with stub_api() as (stub, api):
        stub.on("POST", "/link-codes", {"code": "ABCD-EFGH", "expires_at": EXPIRES})
        watcher = LinkWatcher(api)
        interaction = FakeInteraction(FakeUser(INVOKER_ID, "new_name"))
        await Linking(api, watcher, site_url="https://s.example").code(interaction)
    assert stub.last().body == {"discord_username": "new_name"}
    assert list(watcher.pending) == [INVOKER_ID]
    assert watcher.pending[INVOKER_ID].interaction is interaction


@async_test
async def test_failed_code_registers_nothing() -> None:
    async with stub_api() as (stub, api):
        stub.on("POST", "/link-codes", api_error(429, "rate_limited", "Slow down.",
                                                 retry_after=5))
        watcher = LinkWatcher(api)
        await Linking(api, watcher, site_url="https://s.example").code(FakeInteraction())
    assert watcher.pending == {}


def test_every_command_is_covered() -> None:
    async def names() -> set[str]:
        bot = ZspbBot(load_settings({"DISCORD_BOT_TOKEN": "a.b.c",
                                     "DISCORD_GUILD_ID": "123456789012345678",
                                     "BOT_API_TOKEN": TOKEN}))
        try:
            bot.add_all_application_commands()
            return {cmd.name for cmd in bot.get_all_application_commands()}
        finally:
            await bot.close()

    assert asyncio.run(names()) == {case.name for case in CASES}
