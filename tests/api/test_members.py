"""Member endpoints: invites, redeem, subscriptions, stats, Discord link."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.models import LogEntry
from core.services.discord_link import link_code_create
from core.services.invites import invite_create
from core.services.keys import keys_generate
from tests.api.conftest import assert_error
from tests.factories import ProductFactory, UserFactory


def _keys(actor, product, count=1, days=30):
    return keys_generate(actor=actor, product=product, duration=timedelta(days=days),
                         count=count).codes


@pytest.mark.django_db
class TestInvites:
    def test_create_list_revoke_quota(self, api_as, member):
        api = api_as(member)
        created = api.post("/api/invites")
        assert created.status_code == 201
        invite = created.json()
        assert invite["status"] == "active" and invite["code"].startswith("INV-")
        quota = api.get("/api/invites/quota").json()
        assert (quota["quota"], quota["used"], quota["left"]) == (2, 1, 1)
        page = api.get("/api/invites?limit=10").json()
        assert page["count"] == 1 and page["items"][0]["id"] == invite["id"]
        revoked = api.post(f"/api/invites/{invite['id']}/revoke").json()
        assert revoked["status"] == "revoked" and revoked["code"] is None
        assert api.get("/api/invites/quota").json()["left"] == 2

    def test_quota_exhausted(self, api_as, member):
        api = api_as(member)
        api.post("/api/invites")
        api.post("/api/invites")
        body = assert_error(api.post("/api/invites"), 409, "invite_quota_exceeded")
        assert body["details"] == {"quota": 2, "used": 2}

    def test_cannot_revoke_someone_elses(self, api_as, member):
        other = invite_create(creator=UserFactory.create())
        assert_error(api_as(member).post(f"/api/invites/{other.pk}/revoke"), 403)

    @pytest.mark.parametrize("bad", ["false", "abc", "0", "99999999999999999999999"])
    def test_bad_ids(self, api_as, member, bad):
        response = api_as(member).post(f"/api/invites/{bad}/revoke")
        assert response.status_code in (404, 422)
        assert set(response.json()) == {"code", "message", "details"}

    def test_list_queries_do_not_grow(self, api_as, admin, django_assert_max_num_queries):
        api = api_as(admin)
        for _ in range(3):
            invite_create(creator=admin)
        with django_assert_max_num_queries(6):
            small = api.get("/api/invites")
        for _ in range(40):
            invite_create(creator=admin)
        with django_assert_max_num_queries(6):
            large = api.get("/api/invites?limit=100")
        assert small.json()["count"] == 3 and large.json()["count"] == 43


@pytest.mark.django_db
class TestRedeem:
    def test_redeem_and_countdown_data(self, api_as, member, moderator, product):
        api = api_as(member)
        code = _keys(moderator, product, days=30)[0]
        body = api.post("/api/keys/redeem", {"key": code}).json()
        assert body["product"] == "loader" and body["active"]
        subs = api.get("/api/subscriptions").json()
        assert subs["now"] and subs["items"][0]["expires_at"] == body["expires_at"]
        assert_error(api.post("/api/keys/redeem", {"key": code}), 409, "key_unavailable")
        assert LogEntry.objects.filter(action="key.redeem_failed").count() == 1

    def test_unknown_key_journaled(self, api_as, member):
        unknown = {"key": "ZSPB-00000-00000-00000-00000"}
        assert_error(api_as(member).post("/api/keys/redeem", unknown), 404, "key_invalid")
        entry = LogEntry.objects.get(action="key.redeem_failed")
        assert entry.data == {"reason": "key_invalid"} and entry.actor == member

    def test_subscriptions_queries_do_not_grow(self, api_as, member, moderator,
                                               django_assert_max_num_queries):
        api = api_as(member)
        for _ in range(8):
            product = ProductFactory.create()
            api.post("/api/keys/redeem", {"key": _keys(moderator, product)[0]})
        with django_assert_max_num_queries(4):
            assert len(api.get("/api/subscriptions").json()["items"]) == 8


    def test_redeem_queries_are_constant(self, api_as, member, moderator, product):
        """Redeem costs the same queries for a new subscription, an extension, a lapsed
        subscription restarted, and with many keys, members and subscriptions around; the
        list is asserted so that a new query on the hot path is a conscious change."""
        from django.db import connection
        from django.test.utils import CaptureQueriesContext
        from django.utils import timezone

        from core.models import Subscription

        api = api_as(member)

        def redeem(code: str) -> list[str]:
            with CaptureQueriesContext(connection) as ctx:
                assert api.post("/api/keys/redeem", {"key": code}).status_code == 200
            return [q["sql"].split(" ", 2)[0] + " " + _table(q["sql"])
                    for q in ctx.captured_queries]

        first = redeem(_keys(moderator, product)[0])
        extended = redeem(_keys(moderator, product)[0])
        Subscription.objects.filter(user=member).update(
            expires_at=timezone.now() - timedelta(days=1))
        lapsed = redeem(_keys(moderator, product)[0])
        for number in range(20):
            other = UserFactory.create()
            other_product = ProductFactory.create()
            other_api = api_as(other, ip=f"198.51.100.{number + 10}")
            for code in _keys(moderator, other_product, count=3):
                assert other_api.post("/api/keys/redeem", {"key": code}).status_code == 200
        later = redeem(_keys(moderator, product)[0])
        request = ["SELECT django_session", "SELECT core_user"]  # the session and member
        if connection.vendor != "postgresql":
            # SQLite (the embedded default) takes the ORM steps of the same redeem.
            assert len(first) == len(extended) == len(lapsed) == len(later)
            assert later == [*request, "SAVEPOINT -", "SELECT core_user",
                             "SELECT core_licensekey", "UPDATE core_licensekey",
                             "SELECT core_subscription", "UPDATE core_subscription",
                             "INSERT core_rolesyncrequest", "INSERT core_logentry", "RELEASE -"]
            return
        expected = [
            *request,
            "SAVEPOINT -",  # the redeem's transaction (a savepoint inside the test's)
            "SELECT core_user",  # the member, locked: a ban is seen or waits
            # the key claimed (conditional UPDATE) and the subscription created or extended
            # (one upsert) in one statement, with the product's name and slug
            "WITH core_licensekey",
            "INSERT core_rolesyncrequest", "INSERT core_logentry", "RELEASE -"]
        assert first == extended == lapsed == later == expected, (first, extended, lapsed,
                                                                  later)


def _table(sql: str) -> str:
    """The first table a statement names, for a readable query list."""
    import re

    match = re.search(r'(?:FROM|INTO|UPDATE) "?([a-z_]+)"?', sql)
    return match.group(1) if match else "-"


@pytest.mark.django_db
class TestStats:
    def test_own_and_others(self, api_as, member, support):
        assert api_as(member).get("/api/stats/me").json()["username"] == "member"
        assert_error(api_as(member).get(f"/api/stats/users/{support.pk}"), 403, "forbidden")
        seen = api_as(support).get(f"/api/stats/users/{member.pk}").json()
        assert seen["username"] == "member" and seen["invite_quota"] == 2
        assert_error(api_as(support).get("/api/stats/users/999999"), 404, "not_found")

    def test_history_is_staff_only_and_counts(self, api_as, member, support, moderator, product):
        api_as(member).post("/api/keys/redeem", {"key": _keys(moderator, product)[0]})
        assert_error(api_as(member).get("/api/stats/history"), 403)
        body = api_as(support).get("/api/stats/history?days=7&weeks=2").json()
        assert len(body["days"]) == 7 and len(body["weeks"]) == 2
        today = body["days"][-1]
        assert today["redemptions"] == 1 and today["active_subscriptions"] == 1
        assert today["registrations"] >= 3
        assert_error(api_as(support).get("/api/stats/history?days=1000"), 422)

    def test_stats_queries_do_not_grow(self, api_as, member, moderator,
                                       django_assert_max_num_queries):
        api = api_as(member)
        with django_assert_max_num_queries(10):
            api.get("/api/stats/me")
        for _ in range(5):
            product = ProductFactory.create()
            api.post("/api/keys/redeem", {"key": _keys(moderator, product)[0]})
        api.post("/api/invites")
        with django_assert_max_num_queries(10):
            assert len(api.get("/api/stats/me").json()["subscriptions"]) == 5

    def test_history_queries_constant(self, api_as, support, django_assert_max_num_queries):
        api = api_as(support)
        with django_assert_max_num_queries(10):
            api.get("/api/stats/history?days=90&weeks=52")


@pytest.mark.django_db
class TestDiscordLink:
    def test_link_and_unlink(self, api_as, member):
        api = api_as(member)
        code = link_code_create(discord_id=4242, discord_username="member_dc")
        body = api.post("/api/discord/link", {"code": code}).json()
        assert body == {"discord_id": "4242", "discord_username": "member_dc"}
        assert api.get("/api/auth/me").json()["discord_linked"]
        assert api.delete("/api/discord/link").json() == {"ok": True}
        assert_error(api.delete("/api/discord/link"), 409, "not_linked")

    def test_bad_code(self, api_as, member):
        assert_error(api_as(member).post("/api/discord/link", {"code": "ZZZZ-ZZZZ"}), 400,
                     "link_code_invalid")
        assert LogEntry.objects.filter(action="discord.link_failed").exists()


@pytest.mark.django_db
def test_hot_endpoints_have_constant_queries(api_as, member, moderator, product,
                                             django_assert_max_num_queries):
    api = api_as(member)
    codes = _keys(moderator, product, count=2)
    with django_assert_max_num_queries(14):
        assert api.post("/api/keys/redeem", {"key": codes[0]}).status_code == 200
    for _ in range(20):
        _keys(moderator, ProductFactory.create(), count=5)
    with django_assert_max_num_queries(14):
        assert api.post("/api/keys/redeem", {"key": codes[1]}).status_code == 200
    with django_assert_max_num_queries(4):
        assert api.get("/api/auth/me").status_code == 200
