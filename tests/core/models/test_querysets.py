"""Derived state has one definition each: the QuerySet helpers and the instance methods agree
on active subscriptions, active/open/elapsed bans and usable/expired invites, boundaries
included (a thing ending exactly now has ended)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import Ban, Invite, Subscription
from tests.factories import InviteFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _site_roles(roles):
    """UserFactory gives every user the member role."""


def _ids(queryset) -> set[int]:
    return set(queryset.values_list("pk", flat=True))


def test_active_and_expired_subscriptions_split_at_now() -> None:
    now = timezone.now()
    product = ProductFactory.create()
    subs = {
        offset: Subscription.objects.create(
            user=UserFactory.create(), product=product, started_at=now - timedelta(days=40),
            expires_at=now + timedelta(seconds=offset))
        for offset in (-60, 0, 60)
    }
    assert _ids(Subscription.objects.active(now)) == {subs[60].pk}
    assert _ids(Subscription.objects.expired(now)) == {subs[-60].pk, subs[0].pk}
    assert _ids(Subscription.objects.ended_between(now - timedelta(seconds=60), now)) == {
        subs[0].pk}
    for offset, sub in subs.items():
        assert sub.active_at(now) is (offset > 0)
        assert sub.active_at(now) is Subscription.objects.active(now).filter(pk=sub.pk).exists()
    assert subs[60].is_active and not subs[-60].is_active
    # Chained after other filters, as the selectors use it.
    assert _ids(Subscription.objects.filter(user=subs[60].user).active()) == {subs[60].pk}


def test_bans_open_active_and_elapsed() -> None:
    now = timezone.now()
    start = now - timedelta(days=2)
    permanent = Ban.objects.create(user=UserFactory.create(), reason="x", created_at=start)
    running = Ban.objects.create(user=UserFactory.create(), reason="x", created_at=start,
                                 ends_at=now + timedelta(hours=1))
    ends_now = Ban.objects.create(user=UserFactory.create(), reason="x", created_at=start,
                                  ends_at=now)
    ended = Ban.objects.create(user=UserFactory.create(), reason="x", created_at=start,
                               ends_at=now - timedelta(hours=1))
    lifted = Ban.objects.create(user=UserFactory.create(), reason="x", created_at=start,
                                lifted_at=now - timedelta(days=1))
    assert _ids(Ban.objects.open()) == {permanent.pk, running.pk, ends_now.pk, ended.pk}
    assert _ids(Ban.objects.active(now)) == {permanent.pk, running.pk}
    assert _ids(Ban.objects.elapsed(now)) == {ends_now.pk, ended.pk}
    for ban in (permanent, running, ends_now, ended, lifted):
        assert ban.active_at(now) is Ban.objects.active(now).filter(pk=ban.pk).exists()
    assert permanent.is_active and not lifted.is_active


def test_invites_usable_and_expired() -> None:
    now = timezone.now()
    fresh = InviteFactory.create(created_at=now - timedelta(days=1),
                                 expires_at=now + timedelta(days=1))
    at_expiry = InviteFactory.create(created_at=now - timedelta(days=1), expires_at=now)
    old = InviteFactory.create(created_at=now - timedelta(days=9),
                               expires_at=now - timedelta(days=2))
    used = InviteFactory.create(created_at=now - timedelta(days=1),
                                expires_at=now + timedelta(days=1),
                                status=Invite.Status.USED, used_at=now)
    assert _ids(Invite.objects.usable(now)) == {fresh.pk}
    assert _ids(Invite.objects.expired(now)) == {at_expiry.pk, old.pk}
    for invite in (fresh, at_expiry, old, used):
        assert invite.is_usable(now) is Invite.objects.usable(now).filter(pk=invite.pk).exists()
    assert old.effective_status == "expired"
    assert fresh.effective_status == "active" and used.effective_status == "used"
