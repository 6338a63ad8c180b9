"""The bot's endpoints: one shared token, every command authorised and throttled per invoker."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.behaviour import Rate
from core.models import (
    DiscordLinkCode,
    Invite,
    LicenseKey,
    LogEntry,
    Role,
    RoleSyncRequest,
    Subscription,
    User,
)
from core.services.bans import ban_create
from core.services.keys import keys_generate
from tests.factories import InviteFactory, ProductFactory, UserFactory

BOT = "/api/bot"
MEMBER_ID = 400_000_000_000_000_001
SUPPORT_ID = 400_000_000_000_000_002
MODERATOR_ID = 400_000_000_000_000_003
ADMIN_ID = 400_000_000_000_000_004
STRANGER_ID = 400_000_000_000_000_099  # no site account
USER_ROLE = 500_000_000_000_000_001
LOADER_ROLE = 500_000_000_000_000_002


@pytest.fixture(autouse=True)
def _fresh_throttles():
    # Throttle counters live in the process-wide cache; each test starts with empty buckets.
    cache.clear()
    yield
    cache.clear()


class BotClient:
    def __init__(self, client: Any, token: str) -> None:
        self.client = client
        self.token = token

    def _headers(self, invoker: int | str | None, token: str | None) -> dict[str, str]:
        headers = {}
        token = self.token if token is None else token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if invoker is not None:
            headers["X-Discord-User-Id"] = str(invoker)
        return headers

    def post(self, path: str, body: Any = None, *, invoker: int | str | None = None,
             token: str | None = None) -> Any:
        return self.client.post(f"{BOT}{path}", body if body is not None else {},
                                content_type="application/json",
                                headers=self._headers(invoker, token))

    def get(self, path: str, *, invoker: int | str | None = None,
            token: str | None = None) -> Any:
        return self.client.get(f"{BOT}{path}", headers=self._headers(invoker, token))


@pytest.fixture
def bot(client, settings) -> BotClient:
    return BotClient(client, settings.BOT_API_TOKEN)


def _link(user: User, discord_id: int) -> User:
    User.objects.filter(pk=user.pk).update(discord_id=discord_id, discord_username=user.username)
    user.refresh_from_db()
    return user


@pytest.fixture
def linked(member, support, moderator, admin) -> dict[str, User]:
    return {"member": _link(member, MEMBER_ID), "support": _link(support, SUPPORT_ID),
            "moderator": _link(moderator, MODERATOR_ID), "admin": _link(admin, ADMIN_ID)}


@pytest.fixture
def banned(linked) -> User:
    ban_create(actor=linked["support"], user=linked["member"], reason="spam")
    return linked["member"]


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message", "details"}, body
    assert isinstance(body["message"], str) and body["message"]
    if code is not None:
        assert body["code"] == code, body
    return body


# Every operation with a valid body, so only the caller's identity decides the answer.
def _operations() -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("post", "/link-codes", {"discord_username": "someone"}),
        ("post", "/redeem", {"key": "ZSPB-00000-00000-00000-00000"}),
        ("post", "/keys", {"product": "loader", "duration_days": 30, "count": 1}),
        ("post", "/bans", {"target_discord_id": str(MEMBER_ID), "reason": "spam"}),
        ("post", "/unbans", {"target_discord_id": str(MEMBER_ID)}),
        ("get", f"/stats/{MEMBER_ID}", None),
        ("get", f"/members/{MEMBER_ID}/roles", None),
        ("post", f"/members/{MEMBER_ID}/events", {"event": "update"}),
    ]


OPERATIONS = _operations()
INVOKER_OPERATIONS = [op for op in OPERATIONS if "/members/" not in op[1]]
LINKED_INVOKER_OPERATIONS = [op for op in INVOKER_OPERATIONS if op[1] != "/link-codes"]


def _call(bot: BotClient, op: tuple[str, str, dict[str, Any] | None], **kwargs: Any) -> Any:
    method, path, body = op
    if method == "get":
        return bot.get(path, **kwargs)
    return bot.post(path, body, **kwargs)


@pytest.mark.django_db
class TestAuthentication:
    @pytest.mark.parametrize("op", OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
    @pytest.mark.parametrize("token", ["", "wrong-token-" + "x" * 40])
    def test_absent_or_wrong_token(self, bot, linked, op, token):
        assert_error(_call(bot, op, invoker=MEMBER_ID, token=token), 401, "not_authenticated")

    def test_member_session_is_not_the_bot(self, client, linked):
        client.force_login(linked["admin"])
        response = client.get(f"{BOT}/stats/{ADMIN_ID}", headers={"X-Discord-User-Id":
                                                                   str(ADMIN_ID)})
        assert_error(response, 401, "not_authenticated")

    @pytest.mark.parametrize("op", INVOKER_OPERATIONS,
                             ids=[f"{m} {p}" for m, p, _ in INVOKER_OPERATIONS])
    def test_missing_invoker_header(self, bot, linked, op):
        body = assert_error(_call(bot, op), 422, "invalid_input")
        assert any("X-Discord-User-Id" in e["loc"] for e in body["details"]["errors"])

    @pytest.mark.parametrize("invoker", ["abc", "0", "-5", "1.5", " 12", str(10**30),
                                         str(2**63), "9000000000000000000", "1" * 21, "١٢٣"])
    def test_malformed_invoker_header(self, bot, linked, invoker):
        assert_error(bot.get(f"/stats/{MEMBER_ID}", invoker=invoker), 422, "invalid_input")

    @pytest.mark.parametrize("op", LINKED_INVOKER_OPERATIONS,
                             ids=[f"{m} {p}" for m, p, _ in LINKED_INVOKER_OPERATIONS])
    def test_unlinked_invoker(self, bot, linked, op):
        body = assert_error(_call(bot, op, invoker=STRANGER_ID), 403, "not_linked")
        assert "/code" in body["message"]

    @pytest.mark.parametrize("op", LINKED_INVOKER_OPERATIONS,
                             ids=[f"{m} {p}" for m, p, _ in LINKED_INVOKER_OPERATIONS])
    def test_banned_invoker(self, bot, banned, op):
        assert_error(_call(bot, op, invoker=MEMBER_ID), 403, "user_banned")

    def test_schema_declares_header_and_errors(self):
        from api.api import api

        schema = api.get_openapi_schema()
        bot_ops = {path: ops for path, ops in schema["paths"].items()
                   if path.startswith("/api/bot/")}
        ids = {op["operationId"] for ops in bot_ops.values() for op in ops.values()}
        assert ids == {"bot_link_code_create", "bot_key_redeem", "bot_keys_generate",
                       "bot_ban_create", "bot_ban_lift", "bot_user_stats",
                       "bot_member_roles", "bot_member_event"}
        for path, ops in bot_ops.items():
            for op in ops.values():
                assert op["summary"] and op["security"]
                declared = {str(status) for status in op["responses"]}
                assert {"200", "401", "403", "404", "409", "422", "429"} <= declared
                header = [p for p in op["parameters"] if p["in"] == "header"]
                assert [p["name"] for p in header] == ["X-Discord-User-Id"]
                assert header[0]["required"] is ("/members/" not in path)


@pytest.mark.django_db
class TestLinkCodes:
    def test_unlinked_invoker_gets_a_code(self, bot, roles):
        response = bot.post("/link-codes", {"discord_username": "newbie"}, invoker=STRANGER_ID)
        assert response.status_code == 200, response.content
        body = response.json()
        assert len(body["code"]) == 9
        row = DiscordLinkCode.objects.get()
        assert row.discord_id == STRANGER_ID and row.discord_username == "newbie"
        assert row.expires_at.isoformat()[:19] == body["expires_at"][:19]

    def test_already_linked(self, bot, linked):
        response = bot.post("/link-codes", {"discord_username": "member"}, invoker=MEMBER_ID)
        assert_error(response, 409, "discord_already_linked")

    @pytest.mark.parametrize("body", [{}, {"discord_username": ""}, {"discord_username": 5},
                                      {"discord_username": "x" * 65},
                                      {"discord_username": "a\x00b"},
                                      {"discord_username": "   "},
                                      {"discord_username": "a", "extra": 1}])
    def test_bad_input(self, bot, roles, body):
        assert_error(bot.post("/link-codes", body, invoker=STRANGER_ID), 422, "invalid_input")

    def test_throttled_per_discord_id(self, bot, roles, settings):
        for _ in range(5):  # bot_code_discord: 5/m by default
            assert bot.post("/link-codes", {"discord_username": "a"},
                            invoker=STRANGER_ID).status_code == 200
        response = bot.post("/link-codes", {"discord_username": "a"}, invoker=STRANGER_ID)
        assert_error(response, 429, "rate_limited")
        assert int(response["Retry-After"]) >= 1
        assert bot.post("/link-codes", {"discord_username": "b"},
                        invoker=STRANGER_ID + 1).status_code == 200


@pytest.mark.django_db
class TestRedeem:
    @pytest.fixture
    def code(self, linked, product) -> str:
        return keys_generate(actor=linked["moderator"], product=product,
                             duration=timedelta(days=30), count=1).codes[0]

    def test_success(self, bot, linked, code, product):
        response = bot.post("/redeem", {"key": code}, invoker=MEMBER_ID)
        assert response.status_code == 200, response.content
        body = response.json()
        sub = Subscription.objects.get(user=linked["member"], product=product)
        assert body["product"] == "loader" and body["product_name"] == "Loader"
        assert body["expires_at"][:19] == sub.expires_at.isoformat()[:19]

    def test_unknown_key_journaled(self, bot, linked):
        response = bot.post("/redeem", {"key": "ZSPB-00000-00000-00000-00000"},
                            invoker=MEMBER_ID)
        assert_error(response, 404, "key_invalid")
        entry = LogEntry.objects.get(action="key.redeem_failed")
        assert entry.actor == linked["member"] and entry.data["reason"] == "key_invalid"

    def test_used_key_journaled(self, bot, linked, code):
        assert bot.post("/redeem", {"key": code}, invoker=MEMBER_ID).status_code == 200
        assert_error(bot.post("/redeem", {"key": code}, invoker=SUPPORT_ID), 409,
                     "key_unavailable")
        assert LogEntry.objects.get(action="key.redeem_failed").actor == linked["support"]

    @pytest.mark.parametrize("body", [{}, {"key": ""}, {"key": 12345}, {"key": None},
                                      {"key": "Z" * 65}])
    def test_bad_input(self, bot, linked, body):
        assert_error(bot.post("/redeem", body, invoker=MEMBER_ID), 422, "invalid_input")

    def test_anything_typed_is_just_an_invalid_key(self, bot, linked):
        response = bot.post("/redeem", {"key": "ZSPB\x00- ☃"}, invoker=MEMBER_ID)
        assert_error(response, 404, "key_invalid")
        # A lone surrogate is not text at all.
        response = bot.post("/redeem", {"key": "\ud800"}, invoker=MEMBER_ID)
        assert_error(response, 422, "invalid_input")

    def test_guessing_throttled(self, bot, linked):
        for _ in range(10):  # bot_redeem_discord: 10/m by default
            bot.post("/redeem", {"key": "nope"}, invoker=MEMBER_ID)
        assert_error(bot.post("/redeem", {"key": "nope"}, invoker=MEMBER_ID), 429,
                     "rate_limited")


@pytest.mark.django_db
class TestKeys:
    BODY = {"product": "loader", "duration_days": 30, "count": 3, "note": "giveaway"}

    @pytest.mark.parametrize("who", ["moderator", "admin"])
    def test_moderator_and_up(self, bot, linked, product, who):
        invoker = {"moderator": MODERATOR_ID, "admin": ADMIN_ID}[who]
        response = bot.post("/keys", self.BODY, invoker=invoker)
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["product"] == "loader" and body["duration_days"] == 30
        assert len(body["codes"]) == 3 and len(set(body["codes"])) == 3
        keys = LicenseKey.objects.filter(batch=body["batch"])
        assert keys.count() == 3 and {k.created_by for k in keys} == {linked[who]}
        assert {k.note for k in keys} == {"giveaway"}

    @pytest.mark.parametrize("invoker", [MEMBER_ID, SUPPORT_ID])
    def test_refused_below_moderator(self, bot, linked, product, invoker):
        assert_error(bot.post("/keys", self.BODY, invoker=invoker), 403, "forbidden")
        assert not LicenseKey.objects.exists()

    def test_unknown_product(self, bot, linked):
        body = {**self.BODY, "product": "nope"}
        assert_error(bot.post("/keys", body, invoker=MODERATOR_ID), 404, "not_found")
        # Someone without the right learns nothing about which products exist.
        assert_error(bot.post("/keys", body, invoker=MEMBER_ID), 403, "forbidden")

    def test_inactive_product(self, bot, linked):
        ProductFactory.create(slug="old", is_active=False)
        body = {**self.BODY, "product": "old"}
        assert_error(bot.post("/keys", body, invoker=MODERATOR_ID), 404, "not_found")

    @pytest.mark.parametrize("change", [
        {"count": False}, {"count": True}, {"count": 0}, {"count": 101}, {"count": "3"},
        {"count": 3.5}, {"duration_days": 0}, {"duration_days": 3651},
        {"duration_days": None}, {"duration_days": 10**30}, {"product": ""},
        {"product": "a b"}, {"product": "x" * 51}, {"note": "n" * 201}, {"note": "\x00"},
        {"extra": 1},
    ])
    def test_bad_input(self, bot, linked, product, change):
        body = {**self.BODY, **change}
        assert_error(bot.post("/keys", body, invoker=MODERATOR_ID), 422, "invalid_input")
        assert not LicenseKey.objects.exists()


@pytest.mark.django_db
class TestBans:
    def test_support_bans_member(self, bot, linked):
        response = bot.post("/bans", {"target_discord_id": str(MEMBER_ID), "reason": "spam"},
                            invoker=SUPPORT_ID)
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["target_username"] == "member" and body["ends_at"] is None
        assert body["target_discord_id"] == str(MEMBER_ID)
        assert not User.objects.get(pk=linked["member"].pk).is_active
        assert LogEntry.objects.filter(action="user.ban", actor=linked["support"]).exists()

    def test_timed_ban(self, bot, linked):
        response = bot.post("/bans", {"target_discord_id": str(MEMBER_ID), "reason": "spam",
                                      "duration_hours": 24}, invoker=SUPPORT_ID)
        assert response.status_code == 200, response.content
        ban = linked["member"].bans.get()
        expected = timezone.now() + timedelta(hours=24)
        assert abs((ban.ends_at - expected).total_seconds()) < 60

    def test_member_cannot_ban(self, bot, linked):
        response = bot.post("/bans", {"target_discord_id": str(SUPPORT_ID), "reason": "x"},
                            invoker=MEMBER_ID)
        assert_error(response, 403, "forbidden")

    def test_rank_rules(self, bot, linked):
        up = bot.post("/bans", {"target_discord_id": str(MODERATOR_ID), "reason": "x"},
                      invoker=SUPPORT_ID)
        assert_error(up, 403, "rank_violation")
        self_ban = bot.post("/bans", {"target_discord_id": str(SUPPORT_ID), "reason": "x"},
                            invoker=SUPPORT_ID)
        assert_error(self_ban, 403, "rank_violation")

    def test_unlinked_target(self, bot, linked):
        body = assert_error(bot.post("/bans", {"target_discord_id": str(STRANGER_ID),
                                               "reason": "x"}, invoker=SUPPORT_ID), 404,
                            "not_found")
        assert "not linked" in body["message"]

    def test_already_banned(self, bot, banned):
        response = bot.post("/bans", {"target_discord_id": str(MEMBER_ID), "reason": "again"},
                            invoker=SUPPORT_ID)
        assert_error(response, 409, "already_banned")

    @pytest.mark.parametrize("change", [
        {"target_discord_id": MEMBER_ID}, {"target_discord_id": str(10**30)},
        {"target_discord_id": str(2**63)}, {"target_discord_id": "0"},
        {"target_discord_id": False}, {"reason": ""}, {"reason": "   "}, {"reason": "r" * 501},
        {"reason": "a\x00b"}, {"reason": "line\x1bbreak"},
        {"duration_hours": False}, {"duration_hours": 0}, {"duration_hours": "5"},
        {"duration_hours": 87_601},
    ])
    def test_bad_input(self, bot, linked, change):
        body = {"target_discord_id": str(MEMBER_ID), "reason": "spam", **change}
        assert_error(bot.post("/bans", body, invoker=SUPPORT_ID), 422, "invalid_input")
        assert User.objects.get(pk=linked["member"].pk).is_active

    def test_unban(self, bot, banned, linked):
        response = bot.post("/unbans", {"target_discord_id": str(MEMBER_ID)},
                            invoker=SUPPORT_ID)
        assert response.status_code == 200, response.content
        assert response.json()["target_username"] == "member"
        assert User.objects.get(pk=banned.pk).is_active

    def test_unban_not_banned(self, bot, linked):
        response = bot.post("/unbans", {"target_discord_id": str(MEMBER_ID)},
                            invoker=SUPPORT_ID)
        assert_error(response, 409, "not_banned")

    def test_unban_refused(self, bot, linked):
        ban_create(actor=linked["admin"], user=linked["support"], reason="x")
        response = bot.post("/unbans", {"target_discord_id": str(SUPPORT_ID)},
                            invoker=MEMBER_ID)
        assert_error(response, 403, "forbidden")

    def test_unban_unlinked_target(self, bot, linked):
        response = bot.post("/unbans", {"target_discord_id": str(STRANGER_ID)},
                            invoker=SUPPORT_ID)
        assert_error(response, 404, "not_found")

    @pytest.mark.parametrize("body", [{}, {"target_discord_id": str(10**30)},
                                      {"target_discord_id": 1}])
    def test_unban_bad_input(self, bot, linked, body):
        assert_error(bot.post("/unbans", body, invoker=SUPPORT_ID), 422, "invalid_input")


def _seed_activity(user: User, *, n: int) -> None:
    """Invites, redeemed keys and subscriptions for `user`, n of each."""
    moderator = UserFactory.create(role=Role.objects.get(key="moderator"))
    for i in range(n):
        InviteFactory.create(created_by=user)
        product = ProductFactory.create(discord_role_id=600 + i)
        now = timezone.now()
        Subscription.objects.create(user=user, product=product, started_at=now,
                                    expires_at=now + timedelta(days=1 + i))
        keys_generate(actor=moderator, product=product, duration=timedelta(days=1), count=1)
    LicenseKey.objects.filter(product__subscriptions__user=user).update(
        status="redeemed", redeemed_by=user, redeemed_at=timezone.now()
    )


@pytest.mark.django_db
class TestStats:
    def test_own(self, bot, linked):
        response = bot.get(f"/stats/{MEMBER_ID}", invoker=MEMBER_ID)
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["username"] == "member" and body["discord_linked"] is True
        assert body["role"] == "User" and body["subscriptions"] == []

    def test_member_cannot_see_others(self, bot, linked):
        assert_error(bot.get(f"/stats/{SUPPORT_ID}", invoker=MEMBER_ID), 403, "forbidden")
        # ...nor learn whether someone is linked at all.
        assert_error(bot.get(f"/stats/{STRANGER_ID}", invoker=MEMBER_ID), 403, "forbidden")

    @pytest.mark.parametrize("invoker", [SUPPORT_ID, MODERATOR_ID, ADMIN_ID])
    def test_support_and_up_see_others(self, bot, linked, invoker):
        response = bot.get(f"/stats/{MEMBER_ID}", invoker=invoker)
        assert response.status_code == 200 and response.json()["username"] == "member"

    def test_support_sees_a_banned_member(self, bot, banned):
        body = bot.get(f"/stats/{MEMBER_ID}", invoker=SUPPORT_ID).json()
        assert body["banned"] is True and body["ban_reason"] == "spam"

    def test_unlinked_target(self, bot, linked):
        body = assert_error(bot.get(f"/stats/{STRANGER_ID}", invoker=SUPPORT_ID), 404,
                            "not_found")
        assert "not linked" in body["message"]

    @pytest.mark.parametrize("target", ["abc", str(10**30), str(2**63), "0"])
    def test_bad_target(self, bot, linked, target):
        assert_error(bot.get(f"/stats/{target}", invoker=SUPPORT_ID), 422, "invalid_input")

    def test_query_count_does_not_grow(self, bot, linked):
        def count() -> int:
            with CaptureQueriesContext(connection) as ctx:
                assert bot.get(f"/stats/{MEMBER_ID}", invoker=SUPPORT_ID).status_code == 200
            return len(ctx.captured_queries)

        _seed_activity(linked["member"], n=1)
        small = count()
        _seed_activity(linked["member"], n=25)
        assert count() == small
        body = bot.get(f"/stats/{MEMBER_ID}", invoker=SUPPORT_ID).json()
        assert len(body["subscriptions"]) == 26 and body["keys_redeemed"] == 26
        assert Invite.objects.filter(created_by=linked["member"]).count() == 26

    def test_query_bound(self, bot, linked, django_assert_max_num_queries):
        _seed_activity(linked["member"], n=20)
        with django_assert_max_num_queries(12):
            assert bot.get(f"/stats/{MEMBER_ID}", invoker=SUPPORT_ID).status_code == 200


@pytest.mark.django_db
class TestMemberRoles:
    @pytest.fixture
    def discord_roles(self, linked, product):
        Role.objects.filter(key="user").update(discord_role_id=USER_ROLE)
        product.discord_role_id = LOADER_ROLE
        product.save()
        now = timezone.now()
        Subscription.objects.create(user=linked["member"], product=product, started_at=now,
                                    expires_at=now + timedelta(days=1))

    def test_linked_member(self, bot, discord_roles):
        response = bot.get(f"/members/{MEMBER_ID}/roles")
        assert response.status_code == 200, response.content
        assert response.json() == {"discord_id": str(MEMBER_ID), "linked": True,
                                   "wanted": [str(USER_ROLE), str(LOADER_ROLE)],
                                   "managed": [str(USER_ROLE), str(LOADER_ROLE)]}

    def test_support_without_product(self, bot, discord_roles):
        body = bot.get(f"/members/{SUPPORT_ID}/roles").json()
        assert body["linked"] is True and body["wanted"] == []

    def test_unlinked_member(self, bot, discord_roles):
        body = bot.get(f"/members/{STRANGER_ID}/roles").json()
        assert body == {"discord_id": str(STRANGER_ID), "linked": False, "wanted": [],
                        "managed": [str(USER_ROLE), str(LOADER_ROLE)]}

    def test_banned_member_wants_nothing(self, bot, discord_roles, banned):
        body = bot.get(f"/members/{MEMBER_ID}/roles").json()
        assert body["linked"] is True and body["wanted"] == []

    def test_banned_or_unlinked_invoker_header_is_fine(self, bot, discord_roles, banned):
        # The bot asks for itself here; a named invoker only counts towards their throttle.
        for invoker in (MEMBER_ID, STRANGER_ID):
            assert bot.get(f"/members/{MEMBER_ID}/roles", invoker=invoker).status_code == 200

    @pytest.mark.parametrize("target", ["abc", str(10**30), str(2**63)])
    def test_bad_id(self, bot, roles, target):
        assert_error(bot.get(f"/members/{target}/roles"), 422, "invalid_input")

    def test_malformed_optional_header(self, bot, roles):
        assert_error(bot.get(f"/members/{MEMBER_ID}/roles", invoker="false"), 422,
                     "invalid_input")

    def test_query_count_does_not_grow(self, bot, discord_roles, linked):
        def count() -> int:
            with CaptureQueriesContext(connection) as ctx:
                assert bot.get(f"/members/{MEMBER_ID}/roles").status_code == 200
            return len(ctx.captured_queries)

        small = count()
        _seed_activity(linked["member"], n=30)
        assert count() == small
        assert len(bot.get(f"/members/{MEMBER_ID}/roles").json()["wanted"]) == 32

    def test_query_bound(self, bot, discord_roles, linked, django_assert_max_num_queries):
        _seed_activity(linked["member"], n=30)
        with django_assert_max_num_queries(4):
            assert bot.get(f"/members/{MEMBER_ID}/roles").status_code == 200


@pytest.mark.django_db
class TestMemberEvents:
    def test_join_queues_and_journals(self, bot, linked):
        response = bot.post(f"/members/{MEMBER_ID}/events", {"event": "join"})
        assert response.status_code == 200 and response.json() == {"queued": True}
        row = RoleSyncRequest.objects.get()
        assert row.user == linked["member"] and row.reason == "discord.join"
        assert LogEntry.objects.filter(action="discord.member_join",
                                       target=linked["member"]).exists()

    def test_updates_coalesce_and_journal_nothing(self, bot, linked):
        journal = LogEntry.objects.count()
        for _ in range(3):
            response = bot.post(f"/members/{MEMBER_ID}/events", {"event": "update"})
            assert response.json() == {"queued": True}
        assert RoleSyncRequest.objects.count() == 1
        assert RoleSyncRequest.objects.get().reason == "discord.update"
        assert LogEntry.objects.count() == journal

    def test_banned_member_still_queued(self, bot, banned):
        # Their roles must come off, so the sync matters most here.
        response = bot.post(f"/members/{MEMBER_ID}/events", {"event": "update"})
        assert response.json() == {"queued": True}

    def test_unlinked_member(self, bot, roles):
        response = bot.post(f"/members/{STRANGER_ID}/events", {"event": "join"})
        assert response.status_code == 200 and response.json() == {"queued": False}
        assert not RoleSyncRequest.objects.exists()

    @pytest.mark.parametrize("body", [{}, {"event": "leave"}, {"event": 1}, {"event": None},
                                      {"event": "join", "x": 1}])
    def test_bad_input(self, bot, linked, body):
        assert_error(bot.post(f"/members/{MEMBER_ID}/events", body), 422, "invalid_input")
        assert not RoleSyncRequest.objects.exists()

    def test_bad_id(self, bot, roles):
        assert_error(bot.post(f"/members/{10**30}/events", {"event": "join"}), 422,
                     "invalid_input")


@pytest.mark.django_db
class TestThrottlePerInvoker:
    @pytest.fixture(autouse=True)
    def _tight(self, settings):
        settings.ZSPB = dataclasses.replace(
            settings.ZSPB, rate_limits={**settings.ZSPB.rate_limits, "bot_discord": Rate(3, 60)}
        )

    def test_one_invoker_exhausted_another_passes(self, bot, linked):
        for _ in range(3):
            assert bot.get(f"/stats/{MEMBER_ID}", invoker=MEMBER_ID).status_code == 200
        body = assert_error(bot.get(f"/stats/{MEMBER_ID}", invoker=MEMBER_ID), 429,
                            "rate_limited")
        assert body["details"]["retry_after"] >= 1
        # Same token, another person: their own bucket.
        assert bot.get(f"/stats/{SUPPORT_ID}", invoker=SUPPORT_ID).status_code == 200
        assert bot.get(f"/stats/{MEMBER_ID}", invoker=SUPPORT_ID).status_code == 200

    def test_bucket_shared_across_commands(self, bot, linked, product):
        bot.get(f"/stats/{MODERATOR_ID}", invoker=MODERATOR_ID)
        bot.post("/redeem", {"key": "nope"}, invoker=MODERATOR_ID)
        bot.post("/keys", {"product": "loader", "duration_days": 1, "count": 1},
                 invoker=MODERATOR_ID)
        response = bot.post("/bans", {"target_discord_id": str(MEMBER_ID), "reason": "x"},
                            invoker=MODERATOR_ID)
        assert_error(response, 429, "rate_limited")
        assert User.objects.get(pk=linked["member"].pk).is_active

    def test_unlinked_invoker_is_throttled_too(self, bot, roles):
        for _ in range(3):
            assert_error(bot.get(f"/stats/{STRANGER_ID}", invoker=STRANGER_ID), 403,
                         "not_linked")
        assert_error(bot.get(f"/stats/{STRANGER_ID}", invoker=STRANGER_ID), 429)

    def test_named_invoker_on_member_endpoints(self, bot, linked):
        for _ in range(3):
            bot.get(f"/members/{MEMBER_ID}/roles", invoker=MEMBER_ID)
        assert_error(bot.get(f"/members/{MEMBER_ID}/roles", invoker=MEMBER_ID), 429)
        # The bot asking for itself (no invoker) is not throttled per person.
        assert bot.get(f"/members/{MEMBER_ID}/roles").status_code == 200
        assert bot.post(f"/members/{MEMBER_ID}/events", {"event": "update"}).status_code == 200
