"""The member's own account over the API: password, other sessions, machine binding, role
resync, and the fields the pages read (machine state, days left)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from core.models import LogEntry, RoleSyncRequest, Subscription, User
from core.services.licensing import hwid_digest
from tests.api.conftest import assert_error
from tests.factories import ProductFactory

PASSWORD = "correct horse battery"
NEW_PASSWORD = "another fine passphrase"


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _same_time(a: datetime, b: datetime) -> bool:
    """Equal to the millisecond: the API's JSON carries milliseconds only."""
    return abs(a - b) < timedelta(milliseconds=1)


def _subscribe(user: User, product: Any, *, days: float = 30, **extra: Any) -> Subscription:
    return Subscription.objects.create(user=user, product=product,
                                       expires_at=timezone.now() + timedelta(days=days), **extra)


@pytest.mark.django_db
class TestPassword:
    def test_keeps_this_session_and_ends_the_others(self, api_as, member):
        here, elsewhere = api_as(member), api_as(member, ip="198.51.100.2")
        assert elsewhere.get("/api/auth/me").status_code == 200
        response = here.post("/api/auth/password",
                             {"old_password": PASSWORD, "new_password": NEW_PASSWORD})
        assert response.status_code == 200 and response.json() == {"ok": True}
        assert here.get("/api/auth/me").json()["username"] == "member"
        # The session survives for unsafe calls too (its CSRF token still works).
        assert here.post("/api/invites").status_code == 201
        assert_error(elsewhere.get("/api/auth/me"), 401, "not_authenticated")
        assert LogEntry.objects.filter(action="user.change_password", actor=member).exists()
        # The new password logs in; the old one no longer does.
        fresh = api_as(ip="198.51.100.3")
        assert_error(fresh.post("/api/auth/login", {"username": "member", "password": PASSWORD}),
                     401, "invalid_credentials")
        assert fresh.post("/api/auth/login", {"username": "member",
                                              "password": NEW_PASSWORD}).status_code == 200

    def test_errors_name_the_field(self, api_as, member):
        api = api_as(member)
        wrong = assert_error(api.post("/api/auth/password", {"old_password": "nope",
                                                             "new_password": NEW_PASSWORD}),
                             422, "invalid_input")
        assert set(wrong["details"]["fields"]) == {"old_password"}
        weak = assert_error(api.post("/api/auth/password", {"old_password": PASSWORD,
                                                            "new_password": "password123"}),
                            422, "invalid_input")
        assert set(weak["details"]["fields"]) == {"new_password"}
        # shorter than the minimum length: refused by the schema itself, which shows it
        short = assert_error(api.post("/api/auth/password", {"old_password": PASSWORD,
                                                             "new_password": "member"}),
                             422, "invalid_input")
        assert [e["loc"][-1] for e in short["details"]["errors"]] == ["new_password"]
        assert api.get("/api/auth/me").status_code == 200

    def test_needs_a_session(self, api_as, db):
        assert_error(api_as().post("/api/auth/password", {"old_password": PASSWORD,
                                                          "new_password": NEW_PASSWORD}),
                     401, "not_authenticated")


@pytest.mark.django_db
class TestEndOtherSessions:
    def test_keeps_this_session_and_ends_the_others(self, api_as, member):
        here = api_as(member)
        others = [api_as(member, ip=f"198.51.100.{i}") for i in (2, 3)]
        response = here.post("/api/auth/end-other-sessions")
        assert response.status_code == 200 and response.json() == {"ok": True}
        assert here.get("/api/auth/me").status_code == 200
        assert here.post("/api/invites").status_code == 201
        for other in others:
            assert_error(other.get("/api/auth/me"), 401, "not_authenticated")
        member.refresh_from_db()
        assert member.session_epoch == 1 and member.check_password(PASSWORD)
        entry = LogEntry.objects.get(action="user.end_sessions")
        assert entry.actor == member and entry.target == member and entry.category == "user"
        # Again: still this session only.
        assert here.post("/api/auth/end-other-sessions").status_code == 200
        assert here.get("/api/auth/me").status_code == 200


@pytest.mark.django_db
class TestResetMachine:
    def test_reset_then_cooldown(self, api_as, member, product):
        _subscribe(member, product, hwid_digest=hwid_digest("old-pc"))
        api = api_as(member)
        before = timezone.now()
        response = api.post("/api/subscriptions/loader/reset-machine")
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["product"] == "loader" and body["machine_bound"] is False
        assert body["machine_self_reset"] is True
        available = _at(body["machine_reset_available_at"])
        assert (before + timedelta(days=7) - timedelta(milliseconds=1) <= available
                <= timezone.now() + timedelta(days=7))
        # The loader binds the new computer; resetting again must wait.
        Subscription.objects.update(hwid_digest=hwid_digest("new-pc"))
        refused = assert_error(api.post("/api/subscriptions/loader/reset-machine"), 409,
                               "machine_reset_cooldown")
        assert _same_time(_at(refused["details"]["retry_at"]), available)
        assert Subscription.objects.get().hwid_digest == hwid_digest("new-pc")

    def test_refusals(self, api_as, member, product, settings):
        api = api_as(member)
        assert_error(api.post("/api/subscriptions/loader/reset-machine"), 404, "not_found")
        _subscribe(member, product)
        assert_error(api.post("/api/subscriptions/loader/reset-machine"), 409,
                     "machine_not_bound")
        settings.ZSPB = replace(settings.ZSPB, hwid_self_reset_cooldown_days=0)
        assert_error(api.post("/api/subscriptions/loader/reset-machine"), 403,
                     "machine_reset_disabled")
        assert_error(api.post("/api/subscriptions/Not A Slug!/reset-machine"), 422)


@pytest.mark.django_db
class TestSubscriptionFields:
    def test_machine_fields(self, api_as, member, settings):
        now = timezone.now()
        _subscribe(member, ProductFactory.create(slug="free-pc"), days=10)
        _subscribe(member, ProductFactory.create(slug="bound"), days=9,
                   hwid_digest=hwid_digest("a"))
        recent = now - timedelta(days=2)
        _subscribe(member, ProductFactory.create(slug="waiting"), days=8,
                   hwid_digest=hwid_digest("b"), hwid_self_reset_at=recent)
        _subscribe(member, ProductFactory.create(slug="long-ago"), days=7,
                   hwid_digest=hwid_digest("c"), hwid_self_reset_at=now - timedelta(days=30))
        api = api_as(member)
        items = {i["product"]: i for i in api.get("/api/subscriptions").json()["items"]}
        state = {slug: (i["machine_bound"], i["machine_reset_available_at"],
                        i["machine_self_reset"]) for slug, i in items.items()}
        assert state["free-pc"] == (False, None, True)
        assert state["bound"] == (True, None, True)
        assert state["long-ago"] == (True, None, True)
        assert state["waiting"][0] is True and state["waiting"][2] is True
        assert _same_time(_at(state["waiting"][1]), recent + timedelta(days=7))

        settings.ZSPB = replace(settings.ZSPB, hwid_self_reset_cooldown_days=0)
        items = api.get("/api/subscriptions").json()["items"]
        assert {(i["machine_reset_available_at"], i["machine_self_reset"])
                for i in items} == {(None, False)}


@pytest.mark.django_db
class TestDaysLeftTotal:
    def test_sums_whole_days_of_active_subscriptions(self, api_as, member):
        api = api_as(member)
        assert api.get("/api/stats/me").json()["days_left_total"] == 0
        _subscribe(member, ProductFactory.create(), days=10 + 1 / 24)
        _subscribe(member, ProductFactory.create(), days=5.5)
        _subscribe(member, ProductFactory.create(), days=-3)  # expired: counts nothing
        _subscribe(member, ProductFactory.create(), days=0.5)  # less than a day: 0
        assert api.get("/api/stats/me").json()["days_left_total"] == 15


@pytest.mark.django_db
class TestResync:
    def test_off_unlinked_linked(self, api_as, member, discord_standin, settings):
        api = api_as(member)
        assert_error(api.post("/api/discord/resync"), 409, "not_linked")
        member.discord_id = 444_000_000_000_000_002
        member.save(update_fields=["discord_id"])
        assert api.post("/api/discord/resync").json() == {"ok": True}
        assert RoleSyncRequest.objects.get().user_id == member.pk
        settings.DISCORD_ENABLED = False
        assert_error(api.post("/api/discord/resync"), 409, "discord_off")

    def test_throttled(self, api_as, member, discord_standin):
        member.discord_id = 444_000_000_000_000_003
        member.save(update_fields=["discord_id"])
        api = api_as(member)
        for _ in range(3):
            assert api.post("/api/discord/resync").status_code == 200
        assert_error(api.post("/api/discord/resync"), 429, "rate_limited")
