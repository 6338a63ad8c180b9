"""Every change that affects a member's wanted Discord roles queues a sync in the same
transaction (the outbox), so nothing is lost if Discord or the worker is down."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import RoleSyncRequest
from core.services.bans import ban_create, ban_lift, bans_expire_due
from core.services.discord_link import discord_unlink, link_code_consume, link_code_create
from core.services.keys import key_redeem, keys_generate
from core.services.users import user_set_role


def _reason(user):
    return RoleSyncRequest.objects.get(user=user).reason


@pytest.mark.django_db
def test_redeem_ban_unban_role_link_unlink_queue_a_sync(member, moderator, product, roles):
    code = keys_generate(actor=moderator, product=product, duration=timedelta(days=1),
                         count=1).codes[0]
    key_redeem(user=member, code=code)
    assert _reason(member) == "redeem"
    ban_create(actor=moderator, user=member, reason="x")
    assert _reason(member) == "ban"
    ban_lift(actor=moderator, user=member)
    assert _reason(member) == "unban"
    user_set_role(actor=moderator, user=member, role=roles["support"])
    assert _reason(member) == "role"
    link_code_consume(user=member, code=link_code_create(discord_id=31337))
    assert _reason(member) == "link"
    discord_unlink(user=member)
    assert _reason(member) == "unlink:31337"
    assert RoleSyncRequest.objects.count() == 1  # coalesced per user


@pytest.mark.django_db
def test_expired_ban_queues_a_sync(member, moderator):
    ban_create(actor=moderator, user=member, reason="x",
               ends_at=timezone.now() + timedelta(minutes=5))
    bans_expire_due(now=timezone.now() + timedelta(minutes=10))
    assert _reason(member) == "ban_expired"


@pytest.mark.django_db
def test_refused_change_queues_nothing(member, moderator):
    with pytest.raises(Exception):  # noqa: B017, PT011
        key_redeem(user=member, code="ZSPB-00000-00000-00000-00000")
    assert not RoleSyncRequest.objects.exists()
