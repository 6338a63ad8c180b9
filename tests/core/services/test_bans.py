from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import authenticate
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from core.errors import AlreadyBanned, InvalidInput, NotBanned, PermissionDenied, RankViolation
from core.models import Ban, LogEntry, User
from core.services.bans import ban_create, ban_lift, bans_expire_due
from tests.factories import UserFactory
from tests.staff.conftest import otp_verify


def _login(client, username):
    request = RequestFactory().post("/api/auth/login", REMOTE_ADDR="192.0.2.200")
    return authenticate(request=request, username=username, password="correct horse battery")


@pytest.mark.django_db
class TestBans:
    def test_ban_ends_sessions_at_once(self, client, support, roles):
        staffer = UserFactory.create(username="helper", role=roles["support"])
        client.force_login(staffer)
        otp_verify(client, staffer)  # the admin needs the second factor too
        admin_index = reverse("admin:index")
        assert client.get(admin_index).status_code == 200
        # a moderator bans the logged-in support member
        moderator = UserFactory.create(role=roles["moderator"])
        ban_create(actor=moderator, user=staffer, reason="leaked keys")
        response = client.get(admin_index)
        assert response.status_code == 302 and "/login/" in response["Location"]
        assert _login(client, "helper") is None

    def test_lift_restores_login(self, client, moderator, member):
        ban_create(actor=moderator, user=member, reason="spam")
        ban_lift(actor=moderator, user=member)
        assert _login(client, "member") == member
        entry = LogEntry.objects.get(action="user.unban")
        assert entry.category == "moderation" and entry.actor == moderator

    def test_support_may_ban_members_not_staff(self, support, member, moderator):
        ban_create(actor=support, user=member, reason="spam")
        with pytest.raises(RankViolation):
            ban_create(actor=support, user=moderator, reason="nope")

    def test_member_cannot_ban(self, member):
        with pytest.raises(PermissionDenied):
            ban_create(actor=member, user=UserFactory.create(), reason="x")

    def test_double_ban_and_unban_of_unbanned(self, moderator, member):
        ban_create(actor=moderator, user=member, reason="a")
        with pytest.raises(AlreadyBanned):
            ban_create(actor=moderator, user=member, reason="b")
        ban_lift(actor=moderator, user=member)
        with pytest.raises(NotBanned):
            ban_lift(actor=moderator, user=member)

    @pytest.mark.parametrize("reason", ["", "   ", "x" * 501])
    def test_reason_required(self, moderator, member, reason):
        with pytest.raises(InvalidInput):
            ban_create(actor=moderator, user=member, reason=reason)

    def test_timed_ban_expires(self, moderator, member):
        ban = ban_create(actor=moderator, user=member, reason="cool off",
                         ends_at=timezone.now() + timedelta(hours=1))
        assert bans_expire_due() == 0
        assert bans_expire_due(now=timezone.now() + timedelta(hours=2)) == 1
        assert bans_expire_due(now=timezone.now() + timedelta(hours=2)) == 0  # idempotent
        ban.refresh_from_db()
        assert ban.lifted_at == ban.ends_at
        assert User.objects.get(pk=member.pk).is_active

    def test_lapsed_ban_does_not_block_a_new_one(self, moderator, member):
        ban = ban_create(actor=moderator, user=member, reason="a",
                         ends_at=timezone.now() + timedelta(minutes=1))
        Ban.objects.filter(pk=ban.pk).update(created_at=timezone.now() - timedelta(hours=1),
                                             ends_at=timezone.now() - timedelta(minutes=1))
        ban_create(actor=moderator, user=member, reason="again")
        assert Ban.objects.filter(user=member, lifted_at__isnull=True).count() == 1

    def test_past_end_rejected(self, moderator, member):
        with pytest.raises(InvalidInput):
            ban_create(actor=moderator, user=member, reason="x",
                       ends_at=timezone.now() - timedelta(seconds=1))
