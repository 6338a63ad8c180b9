"""Staff-only API operations need the second factor the admin asks for (defect 4 of issue 9).

A staff member with a password-only session is refused with 403 `two_factor_required`; the
same session after TOTP is served. Members are refused as before (403 `forbidden`), their own
data needs no second factor, and the bot's token calls are not sessions at all.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from core.models import Invite
from core.services.invites import invite_create
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db


def test_password_only_staff_cannot_read_other_members_stats(api_as, member, support):
    api = api_as(support, verified=False)
    assert_error(api.get(f"/api/stats/users/{member.pk}"), 403, "two_factor_required")
    assert_error(api.get("/api/stats/history"), 403, "two_factor_required")
    # Their own data is member data.
    assert api.get("/api/stats/me").status_code == 200
    assert api.get(f"/api/stats/users/{support.pk}").status_code == 200


def test_verified_staff_read_other_members_stats(api_as, member, support):
    api = api_as(support, verified=True)
    assert api.get(f"/api/stats/users/{member.pk}").json()["username"] == "member"
    assert api.get("/api/stats/history?days=2&weeks=1").status_code == 200


def test_members_are_refused_as_before(api_as, member, support):
    assert_error(api_as(member).get(f"/api/stats/users/{support.pk}"), 403, "forbidden")
    assert_error(api_as(member).get("/api/stats/history"), 403, "forbidden")


def test_password_only_staff_cannot_revoke_someone_elses_invite(api_as, member, moderator):
    invite = invite_create(creator=member)
    response = api_as(moderator, verified=False).post(f"/api/invites/{invite.pk}/revoke")
    assert_error(response, 403, "two_factor_required")
    invite.refresh_from_db()
    assert invite.status == Invite.Status.ACTIVE
    assert api_as(moderator).post(f"/api/invites/{invite.pk}/revoke").json()["status"] == (
        "revoked")


def test_password_only_staff_still_revoke_their_own_invite(api_as, moderator):
    invite = invite_create(creator=moderator)
    api = api_as(moderator, verified=False)
    assert api.post(f"/api/invites/{invite.pk}/revoke").json()["status"] == "revoked"


def test_bot_calls_need_no_second_factor(member, support):
    member.discord_id, support.discord_id = 4001, 4002
    member.save(update_fields=["discord_id"])
    support.save(update_fields=["discord_id"])
    response = Client().get("/api/bot/stats/4001",
                            HTTP_AUTHORIZATION=f"Bearer {settings.BOT_API_TOKEN}",
                            HTTP_X_DISCORD_USER_ID="4002")
    assert response.status_code == 200, response.content
