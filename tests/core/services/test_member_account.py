"""What members do to their own account: change the password, unbind their machine, ask for a
Discord role resync; and what a banned member is told at login."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpResponse
from django.test import RequestFactory
from django.utils import timezone

from config.behaviour import Rate
from core.errors import (
    DiscordOff,
    InvalidCredentials,
    InvalidInput,
    MachineNotBound,
    MachineResetCooldown,
    MachineResetDisabled,
    NotFound,
    NotLinked,
    RateLimited,
    UserBanned,
)
from core.models import LogEntry, RoleSyncRequest, Subscription, User
from core.services.auth import user_login
from core.services.bans import ban_create, ban_lift
from core.services.discord_link import discord_roles_resync
from core.services.licensing import hwid_digest, subscription_hwid_self_reset
from core.services.users import user_change_password
from tests.conftest import run_concurrently
from tests.factories import ProductFactory, UserFactory

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a much better passphrase"


def _rates(settings: Any, **rates: Rate) -> None:
    settings.ZSPB = replace(settings.ZSPB, rate_limits={**settings.ZSPB.rate_limits, **rates})


def _bound(user: User, product: Any, **extra: Any) -> Subscription:
    return Subscription.objects.create(user=user, product=product,
                                       expires_at=timezone.now() + timedelta(days=30),
                                       hwid_digest=hwid_digest("old-pc"), **extra)


# Password ---------------------------------------------------------------------------------
@pytest.mark.django_db
class TestChangePassword:
    def test_wrong_current_password(self, member):
        with pytest.raises(InvalidInput) as caught:
            user_change_password(user=member, old_password="not it", new_password=NEW_PASSWORD)
        assert set(caught.value.details["fields"]) == {"old_password"}
        member.refresh_from_db()
        assert member.check_password(PASSWORD) and member.session_epoch == 0

    @pytest.mark.parametrize("weak", ["short", "password123", "1234567890123", "member"])
    def test_weak_new_password(self, member, weak):
        with pytest.raises(InvalidInput) as caught:
            user_change_password(user=member, old_password=PASSWORD, new_password=weak)
        fields = caught.value.details["fields"]
        assert set(fields) == {"new_password"} and fields["new_password"]
        member.refresh_from_db()
        assert member.check_password(PASSWORD)

    def test_success_ends_every_session_and_is_journaled(self, member):
        before = member.get_session_auth_hash()
        user = user_change_password(user=member, old_password=PASSWORD,
                                    new_password=NEW_PASSWORD)
        assert user.session_epoch == 1
        stored = User.objects.get(pk=member.pk)
        assert stored.session_epoch == 1 and stored.check_password(NEW_PASSWORD)
        assert not stored.check_password(PASSWORD)
        assert stored.get_session_auth_hash() != before
        entry = LogEntry.objects.get(action="user.change_password")
        assert entry.actor == member and entry.category == "user"
        # The returned user is current: re-keying the caller's session uses its hash.
        assert user.get_session_auth_hash() == stored.get_session_auth_hash()

    def test_throttled_per_account(self, member, settings):
        _rates(settings, password_account=Rate(count=3, seconds=3600))
        for _ in range(3):
            with pytest.raises(InvalidInput):
                user_change_password(user=member, old_password="guess", new_password=NEW_PASSWORD)
        with pytest.raises(RateLimited):
            user_change_password(user=member, old_password=PASSWORD, new_password=NEW_PASSWORD)
        member.refresh_from_db()
        assert member.check_password(PASSWORD)
        # Another member is counted apart.
        other = UserFactory.create()
        user_change_password(user=other, old_password=PASSWORD, new_password=NEW_PASSWORD)


# Machine self-reset ------------------------------------------------------------------------
@pytest.mark.django_db
class TestMachineSelfReset:
    def test_not_bound(self, member, product):
        Subscription.objects.create(user=member, product=product,
                                    expires_at=timezone.now() + timedelta(days=3))
        with pytest.raises(MachineNotBound):
            subscription_hwid_self_reset(user=member, product_slug="loader")

    def test_reset_then_cooldown_then_allowed_again(self, member, product, settings):
        assert settings.ZSPB.hwid_self_reset_cooldown_days == 7
        sub = _bound(member, product)
        before = timezone.now()
        result = subscription_hwid_self_reset(user=member, product_slug="loader")
        sub.refresh_from_db()
        assert result.pk == sub.pk and sub.hwid_digest == ""
        assert sub.hwid_self_reset_at is not None and sub.hwid_self_reset_at >= before
        entry = LogEntry.objects.get(action="subscription.self_reset_hwid")
        assert entry.actor == member and entry.category == "user"
        assert entry.data == {"subscription_id": sub.pk, "product": "loader"}

        # The loader binds the new machine; an immediate second reset waits out the cooldown.
        Subscription.objects.filter(pk=sub.pk).update(hwid_digest=hwid_digest("new-pc"))
        with pytest.raises(MachineResetCooldown) as caught:
            subscription_hwid_self_reset(user=member, product_slug="loader")
        expected = sub.hwid_self_reset_at + timedelta(days=7)
        assert caught.value.details["retry_at"] == expected.isoformat()
        sub.refresh_from_db()
        assert sub.hwid_digest == hwid_digest("new-pc")

        # Just inside the cooldown: still refused. Once it is over: allowed.
        Subscription.objects.filter(pk=sub.pk).update(
            hwid_self_reset_at=timezone.now() - timedelta(days=7) + timedelta(minutes=1))
        with pytest.raises(MachineResetCooldown):
            subscription_hwid_self_reset(user=member, product_slug="loader")
        Subscription.objects.filter(pk=sub.pk).update(
            hwid_self_reset_at=timezone.now() - timedelta(days=7, seconds=1))
        subscription_hwid_self_reset(user=member, product_slug="loader")
        sub.refresh_from_db()
        assert sub.hwid_digest == "" and sub.hwid_self_reset_at > timezone.now() - timedelta(
            minutes=1)
        assert LogEntry.objects.filter(action="subscription.self_reset_hwid").count() == 2

    def test_cooldown_applies_per_subscription(self, member, product):
        _bound(member, product)
        _bound(member, ProductFactory.create(slug="other"))
        subscription_hwid_self_reset(user=member, product_slug="loader")
        subscription_hwid_self_reset(user=member, product_slug="other")

    def test_disabled_when_cooldown_is_zero(self, member, product, settings):
        settings.ZSPB = replace(settings.ZSPB, hwid_self_reset_cooldown_days=0)
        sub = _bound(member, product)
        with pytest.raises(MachineResetDisabled):
            subscription_hwid_self_reset(user=member, product_slug="loader")
        sub.refresh_from_db()
        assert sub.hwid_digest == hwid_digest("old-pc")
        assert not LogEntry.objects.filter(action="subscription.self_reset_hwid").exists()

    def test_someone_elses_product(self, member, product):
        other = UserFactory.create()
        theirs = _bound(other, product)
        with pytest.raises(NotFound):
            subscription_hwid_self_reset(user=member, product_slug="loader")
        with pytest.raises(NotFound):
            subscription_hwid_self_reset(user=member, product_slug="no-such-product")
        theirs.refresh_from_db()
        assert theirs.hwid_digest == hwid_digest("old-pc")

    def test_expired_subscription_can_still_be_unbound(self, member, product):
        sub = _bound(member, product)
        Subscription.objects.filter(pk=sub.pk).update(
            expires_at=timezone.now() - timedelta(days=1))
        subscription_hwid_self_reset(user=member, product_slug="loader")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_self_resets_reset_once(roles):
    member = UserFactory.create(role=roles["user"])
    product = ProductFactory.create(slug="loader")
    _bound(member, product)

    def reset(_: int) -> Any:
        return subscription_hwid_self_reset(user=member, product_slug="loader")

    results = run_concurrently(reset)
    done = [r for r in results if isinstance(r, Subscription)]
    refused = [r for r in results if isinstance(r, (MachineNotBound, MachineResetCooldown))]
    assert len(done) == 1, results
    assert len(refused) == len(results) - 1, results
    assert LogEntry.objects.filter(action="subscription.self_reset_hwid").count() == 1
    sub = Subscription.objects.get()
    assert sub.hwid_digest == "" and sub.hwid_self_reset_at == done[0].hwid_self_reset_at


# Discord role resync -----------------------------------------------------------------------
@pytest.mark.django_db
class TestRolesResync:
    def test_discord_off(self, member):
        member.discord_id = 444_000_000_000_000_001
        member.save(update_fields=["discord_id"])
        with pytest.raises(DiscordOff):
            discord_roles_resync(user=member)
        assert not RoleSyncRequest.objects.exists()

    def test_not_linked(self, member, discord_standin):
        with pytest.raises(NotLinked):
            discord_roles_resync(user=member)
        assert not RoleSyncRequest.objects.exists()

    def test_queues_a_sync_and_is_throttled(self, member, discord_standin):
        member.discord_id = 444_000_000_000_000_001
        member.save(update_fields=["discord_id"])
        assert settings_rate("resync_account") == Rate(count=3, seconds=600)
        for _ in range(3):
            discord_roles_resync(user=member)
        request = RoleSyncRequest.objects.get()
        assert request.user == member and request.reason == "member_resync"
        assert LogEntry.objects.filter(action="discord.resync", actor=member).count() == 3
        with pytest.raises(RateLimited):
            discord_roles_resync(user=member)
        assert LogEntry.objects.filter(action="discord.resync").count() == 3
        assert not discord_standin.served(), "a resync only queues; the drain calls Discord"


def settings_rate(scope: str) -> Rate:
    from django.conf import settings

    return settings.ZSPB.rate_limits[scope]


# What a banned member is told at login -----------------------------------------------------
def _login_request() -> Any:
    request = RequestFactory().post("/login", REMOTE_ADDR="192.0.2.44")
    SessionMiddleware(lambda r: HttpResponse()).process_request(request)
    return request


@pytest.mark.django_db
class TestBannedLogin:
    def _login(self, password: str) -> User:
        return user_login(request=_login_request(), username="member", password=password,
                          ip="192.0.2.44")

    def test_right_password_learns_the_reason_and_end(self, member, moderator):
        ends_at = timezone.now() + timedelta(days=2)
        ban_create(actor=moderator, user=member, reason="Chargeback", ends_at=ends_at)
        with pytest.raises(UserBanned) as caught:
            self._login(PASSWORD)
        assert caught.value.details == {"reason": "Chargeback", "ends_at": ends_at.isoformat()}

    def test_wrong_password_learns_nothing(self, member, moderator):
        ban_create(actor=moderator, user=member, reason="Chargeback")
        with pytest.raises(InvalidCredentials) as caught:
            self._login("not the password")
        assert "Chargeback" not in str(caught.value.details)

    def test_after_the_ban_is_lifted_the_login_works(self, member, moderator):
        ban_create(actor=moderator, user=member, reason="Chargeback")
        ban_lift(actor=moderator, user=member)
        assert self._login(PASSWORD).pk == member.pk

    def test_deactivated_without_a_ban_is_just_invalid(self, member):
        User.objects.filter(pk=member.pk).update(is_active=False)
        with pytest.raises(InvalidCredentials):
            self._login(PASSWORD)

    def test_unknown_user(self, db):
        with pytest.raises(InvalidCredentials):
            user_login(request=_login_request(), username="ghost", password=PASSWORD,
                       ip="192.0.2.44")
