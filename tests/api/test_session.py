from __future__ import annotations

import pytest
from django.test import Client

from core.models import LogEntry
from core.services.bans import ban_create
from core.services.invites import invite_create
from tests.api.conftest import assert_error

PASSWORD = "correct horse battery"


@pytest.mark.django_db
class TestLogin:
    def test_login_me_logout(self, api_as, member):
        api = api_as()
        response = api.post("/api/auth/login", {"username": "member", "password": PASSWORD})
        assert response.status_code == 200, response.content
        assert response.json()["username"] == "member"
        me = api.get("/api/auth/me").json()
        assert me["role"] == "User" and me["capabilities"] == []
        assert api.post("/api/auth/logout").status_code == 200
        assert_error(api.get("/api/auth/me"), 401, "not_authenticated")
        assert LogEntry.objects.filter(action="user.login", actor=member).exists()

    def test_login_needs_csrf(self, member):
        client = Client(enforce_csrf_checks=True)
        response = client.post("/api/auth/login", {"username": "member", "password": PASSWORD},
                               content_type="application/json")
        assert_error(response, 403, "forbidden")

    def test_unsafe_member_call_needs_csrf(self, member):
        client = Client(enforce_csrf_checks=True)
        client.force_login(member)
        assert_error(client.post("/api/invites"), 403)

    def test_wrong_password_is_journaled(self, api_as, member):
        response = api_as().post("/api/auth/login", {"username": "member", "password": "nope"})
        assert_error(response, 401, "invalid_credentials")
        assert LogEntry.objects.filter(action="user.login_failed").count() == 1

    def test_banned_member_cannot_log_in_and_is_told_why(self, api_as, member, moderator):
        ban_create(actor=moderator, user=member, reason="spam")
        response = api_as().post("/api/auth/login", {"username": "member", "password": PASSWORD})
        assert_error(response, 403, "user_banned")
        assert response.json()["details"] == {"reason": "spam", "ends_at": None}

    def test_banned_member_with_a_wrong_password_learns_nothing(self, api_as, member,
                                                                 moderator):
        ban_create(actor=moderator, user=member, reason="spam")
        response = api_as().post("/api/auth/login", {"username": "member", "password": "nope"})
        assert_error(response, 401, "invalid_credentials")
        assert "spam" not in response.content.decode()

    def test_ban_ends_api_session(self, api_as, member, moderator):
        api = api_as(member)
        assert api.get("/api/auth/me").status_code == 200
        ban_create(actor=moderator, user=member, reason="spam")
        assert_error(api.get("/api/auth/me"), 401)

    @pytest.mark.parametrize("body", [{}, {"username": "x"}, {"username": 5, "password": "x"},
                                      {"username": "x" * 151, "password": "y"},
                                      {"username": "a", "password": "p" * 129}])
    def test_bad_bodies(self, api_as, db, body):
        body_out = assert_error(api_as().post("/api/auth/login", body), 422, "invalid_input")
        assert body_out["details"]["errors"]


@pytest.mark.django_db
class TestRegister:
    def test_register_logs_in(self, api_as, admin):
        invite = invite_create(creator=admin)
        api = api_as(ip="203.0.113.50")
        response = api.post("/api/auth/register", {"invite": invite.code, "username": "fresh",
                                                   "password": "a fine passphrase"})
        assert response.status_code == 201, response.content
        assert api.get("/api/auth/me").json()["username"] == "fresh"

    def test_bad_invite_and_email(self, api_as, admin):
        api = api_as()
        assert_error(api.post("/api/auth/register", {"invite": "INV-" + "Z" * 20,
                                                     "username": "fresh",
                                                     "password": "a fine passphrase"}),
                     400, "invite_invalid")
        # too short to be an invite at all: the schema says so
        assert_error(api.post("/api/auth/register", {"invite": "INV-X", "username": "fresh",
                                                     "password": "a fine passphrase"}),
                     422, "invalid_input")
        invite = invite_create(creator=admin)
        assert_error(api.post("/api/auth/register", {"invite": invite.code, "username": "fresh",
                                                     "password": "a fine passphrase",
                                                     "email": "not-an-email"}),
                     422, "invalid_input")
