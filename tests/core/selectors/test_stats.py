"""user_stats is written in SQL for speed (issue 12): its conditions must keep selecting the
rows the ORM rules select (counted_this_month, BanQuerySet.active), on every state."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import Ban, Invite, LicenseKey, User
from core.selectors.invites import invite_quota, invites_counted_this_month, month_start
from core.selectors.stats import user_stats
from tests.factories import InviteFactory, UserFactory

pytestmark = pytest.mark.django_db


def _invites(user: User, now) -> None:
    this_month = month_start(now)
    moments = [this_month - timedelta(seconds=1), this_month, this_month + timedelta(hours=1),
               now, now - timedelta(days=40)]
    for at in moments:
        for status in Invite.Status:
            InviteFactory.create(
                created_by=user, created_at=at, status=status, expires_at=at + timedelta(days=7),
                used_at=at if status == Invite.Status.USED else None,
                revoked_at=at if status == Invite.Status.REVOKED else None)


@pytest.mark.parametrize("ban", ["none", "permanent", "running", "ended", "lifted"])
def test_counts_and_ban_match_the_orm_rules(ban: str, roles) -> None:
    now = timezone.now()
    inviter = UserFactory.create(username="inviter")
    user = UserFactory.create(username="counted", role=roles["support"], invited_by=inviter)
    _invites(user, now)
    _invites(UserFactory.create(), now)  # someone else's never count
    if ban != "none":
        ends = {"permanent": None, "running": now + timedelta(days=1),
                "ended": now - timedelta(seconds=1), "lifted": now + timedelta(days=1)}[ban]
        Ban.objects.create(user=user, reason="<b>why</b>", ends_at=ends,
                           created_at=now - timedelta(days=2),
                           lifted_at=now - timedelta(hours=1) if ban == "lifted" else None)

    stats = user_stats(user_id=user.pk, now=now)

    assert stats.invites_created == Invite.objects.filter(created_by=user).count() == 15
    assert stats.invites_used == Invite.objects.filter(created_by=user,
                                                       status=Invite.Status.USED).count()
    quota = invite_quota(user=user)
    assert quota is not None and stats.invite_quota == quota
    counted = invites_counted_this_month(user=user, now=now)
    assert counted == 6  # three moments this month, active or used
    assert stats.invites_left_this_month == max(quota - counted, 0)
    assert stats.keys_redeemed == LicenseKey.objects.filter(redeemed_by=user).count()
    active = Ban.objects.active(now).filter(user=user).first()
    assert stats.banned == (active is not None) == (ban in ("permanent", "running"))
    if active is not None:
        assert (stats.ban_reason, stats.ban_ends_at) == (active.reason, active.ends_at)
    else:
        assert (stats.ban_reason, stats.ban_ends_at) == (None, None)
    assert (stats.username, stats.role, stats.invited_by) == ("counted", "Support", "inviter")
    assert stats.date_joined == user.date_joined


def test_a_superuser_has_no_quota_and_a_user_without_a_role_none(roles) -> None:
    boss = UserFactory.create(is_superuser=True)
    nobody = UserFactory.create(role=None)
    assert user_stats(user_id=boss.pk).invite_quota is None
    stats = user_stats(user_id=nobody.pk)
    assert (stats.role, stats.invite_quota, stats.invites_left_this_month) == (None, 0, 0)
