from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.utils import timezone

from core.errors import (
    InviteInvalid,
    InviteNotRevocable,
    InviteQuotaExceeded,
    InvitingDisabled,
    PermissionDenied,
    UserBanned,
)
from core.models import Invite, LogEntry, Role
from core.selectors.invites import invite_quota_left, month_start
from core.services.bans import ban_create
from core.services.invites import invite_create, invite_revoke
from core.services.users import user_register
from tests.factories import UserFactory


def _fill_quota(user, n, now=None):
    return [invite_create(creator=user, now=now) for _ in range(n)]


@pytest.mark.django_db
class TestQuota:
    @pytest.mark.parametrize(("role", "quota"), [("user", 2), ("support", 2), ("moderator", 10)])
    def test_each_role_quota(self, roles, role, quota):
        user = UserFactory.create(role=roles[role])
        _fill_quota(user, quota)
        assert invite_quota_left(user=user) == 0
        with pytest.raises(InviteQuotaExceeded) as exc:
            invite_create(creator=user)
        assert exc.value.details == {"quota": quota, "used": quota}
        assert Invite.objects.filter(created_by=user).count() == quota

    def test_admin_is_unlimited(self, admin):
        _fill_quota(admin, 25)
        assert invite_quota_left(user=admin) is None

    def test_admin_edited_quota_takes_effect_at_once(self, member):
        _fill_quota(member, 2)
        Role.objects.filter(key="user").update(invite_quota=3)
        invite_create(creator=member)  # the stale member object still works
        with pytest.raises(InviteQuotaExceeded):
            invite_create(creator=member)
        Role.objects.filter(key="user").update(invite_quota=None)
        _fill_quota(member, 5)
        Role.objects.filter(key="user").update(invite_quota=0)
        with pytest.raises(InviteQuotaExceeded):
            invite_create(creator=member)

    def test_resets_at_calendar_month_boundary(self, member):
        last_minute = datetime(2026, 1, 31, 23, 59, tzinfo=dt_timezone.utc)
        _fill_quota(member, 2, now=last_minute)
        with pytest.raises(InviteQuotaExceeded):
            invite_create(creator=member, now=last_minute + timedelta(seconds=59))
        first_second = datetime(2026, 2, 1, 0, 0, tzinfo=dt_timezone.utc)
        _fill_quota(member, 2, now=first_second)
        assert invite_quota_left(user=member, now=first_second) == 0

    def test_month_follows_site_time_zone(self, settings):
        settings.TIME_ZONE = "Europe/Moscow"
        utc_evening = datetime(2026, 2, 28, 22, 0, tzinfo=dt_timezone.utc)  # 1 March in Moscow
        assert month_start(utc_evening).month == 3

    def test_revoke_refunds_unused(self, member):
        first, _ = _fill_quota(member, 2)
        invite_revoke(actor=member, invite_id=first.pk)
        assert invite_quota_left(user=member) == 1
        invite_create(creator=member)
        with pytest.raises(InviteNotRevocable):
            invite_revoke(actor=member, invite_id=first.pk)

    def test_used_invite_cannot_be_revoked(self, member):
        invite = invite_create(creator=member)
        user_register(invite_code=invite.code, username="newbie", password="a fine passphrase",
                      ip="203.0.113.5")
        with pytest.raises(InviteNotRevocable):
            invite_revoke(actor=member, invite_id=invite.pk)

    def test_only_owner_or_user_manager_revokes(self, member, support, moderator):
        invite = invite_create(creator=member)
        with pytest.raises(PermissionDenied):
            invite_revoke(actor=support, invite_id=invite.pk)
        invite_revoke(actor=moderator, invite_id=invite.pk)
        assert LogEntry.objects.filter(action="invite.revoke", category="moderation").exists()

    def test_disabled_and_banned_cannot_invite(self, member, moderator):
        member.can_invite = False
        member.save()
        with pytest.raises(InvitingDisabled):
            invite_create(creator=member)
        other = UserFactory.create()
        ban_create(actor=moderator, user=other, reason="abuse")
        with pytest.raises(UserBanned):
            invite_create(creator=other)


@pytest.mark.django_db
class TestUse:
    def _register(self, code, name, ip="198.51.100.7"):
        return user_register(invite_code=code, username=name, password="a fine passphrase",
                             ip=ip)

    def test_single_use_and_tree(self, member):
        invite = invite_create(creator=member)
        user = self._register(invite.code, "alice")
        assert user.invited_by == member
        assert user.role.key == "user"
        invite.refresh_from_db()
        assert invite.status == Invite.Status.USED and invite.used_by == user
        with pytest.raises(InviteInvalid):
            self._register(invite.code, "bob", ip="198.51.100.8")

    def test_expired(self, member):
        invite = invite_create(creator=member, now=timezone.now() - timedelta(days=8))
        with pytest.raises(InviteInvalid):
            self._register(invite.code, "late")

    def test_expiry_follows_config(self, member, settings):
        invite = invite_create(creator=member)
        assert invite.expires_at - invite.created_at == timedelta(days=7)

    def test_revoked(self, member):
        invite = invite_create(creator=member)
        invite_revoke(actor=member, invite_id=invite.pk)
        with pytest.raises(InviteInvalid):
            self._register(invite.code, "nope")

    def test_invite_of_banned_creator_is_void(self, member, moderator):
        invite = invite_create(creator=member)
        ban_create(actor=moderator, user=member, reason="selling invites")
        with pytest.raises(InviteInvalid):
            self._register(invite.code, "buyer")

    def test_code_typed_loosely(self, member):
        invite = invite_create(creator=member)
        assert self._register(invite.code.lower().replace("-", " "), "typist")
