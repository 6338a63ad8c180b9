from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import RequestFactory
from django.utils import timezone
from nacl.signing import VerifyKey

from config.behaviour import Rate
from core.errors import (
    InvalidInput,
    NotFound,
    PermissionDenied,
    RankViolation,
    RateLimited,
    UserBanned,
)
from core.models import LogEntry, Subscription
from core.selectors.licensing import license_public_key
from core.services.bans import ban_create
from core.services.keys import key_redeem, keys_generate
from core.services.licensing import (
    binding_digest,
    hwid_digest,
    license_check,
    subscription_reset_hwid,
)
from tests.conftest import run_concurrently
from tests.factories import ProductFactory, UserFactory

NONCE = "n0nce-0123456789abcdef"


@pytest.fixture(autouse=True)
def _fresh_throttles():
    cache.clear()


def _request(ip="192.0.2.10"):
    return RequestFactory().post("/api/license/check", REMOTE_ADDR=ip)


def _check(*, ip="192.0.2.10", product="loader", hwid="machine-A", nonce=NONCE, **mode):
    return license_check(request=_request(ip), ip=ip, product=product, hwid=hwid, nonce=nonce,
                         **mode)


def _decode(answer):
    payload = base64.b64decode(answer.payload)
    VerifyKey(base64.b64decode(license_public_key())).verify(
        payload, base64.b64decode(answer.signature))
    return json.loads(payload)


def _redeemed_key(staff, user, product, days=30):
    code = keys_generate(actor=staff, product=product, duration=timedelta(days=days),
                         count=1).codes[0]
    key_redeem(user=user, code=code)
    return code


def _refusal_world(staff, roles, product):
    """Keys of a banned and of a lapsed member, and a member with no subscription at all."""
    banned = UserFactory.create(username="banned", role=roles["user"])
    banned_code = _redeemed_key(staff, banned, product)
    ban_create(actor=staff, user=banned, reason="x")
    lapsed = UserFactory.create(username="lapsed", role=roles["user"])
    lapsed_code = _redeemed_key(staff, lapsed, product)
    Subscription.objects.filter(user=lapsed).update(
        expires_at=timezone.now() - timedelta(seconds=1))
    UserFactory.create(username="nosub", role=roles["user"])
    return banned_code, lapsed_code


def _reasons():
    return list(LogEntry.objects.filter(action="license.check_failed")
                .order_by("id").values_list("data__reason", flat=True))


@pytest.mark.django_db
class TestLicenseCheck:
    def test_key_mode_valid_and_signed(self, moderator, member, product):
        code = _redeemed_key(moderator, member, product)
        data = _decode(_check(key=code))
        subscription = Subscription.objects.get(user=member, product=product)
        assert data == {"v": 2, "valid": True, "nonce": NONCE, "timestamp": data["timestamp"],
                        "product": "loader", "username": "member",
                        "hwid_digest": binding_digest("hwid", "machine-A"),
                        "key_digest": binding_digest("key", code),
                        "expires_at": subscription.expires_at.isoformat(),
                        "latest_version": None, "latest_sha256": None}
        assert abs(data["timestamp"] - timezone.now().timestamp()) < 5
        entry = LogEntry.objects.get(action="license.check_ok")
        assert entry.category == "user" and entry.actor == member
        assert entry.data["hwid_bound"] is True and entry.data["mode"] == "key"

    def test_account_mode_valid(self, moderator, member, product):
        _redeemed_key(moderator, member, product)
        data = _decode(_check(username="member", password="correct horse battery"))
        assert data["valid"] is True and data["username"] == "member"

    def test_key_is_typed_loosely(self, moderator, member, product):
        code = _redeemed_key(moderator, member, product)
        assert _check(key=code.lower().replace("-", " ")).valid

    def test_hwid_bind_refuse_reset_rebind(self, moderator, member, product):
        code = _redeemed_key(moderator, member, product)
        assert _check(key=code, hwid="machine-A").valid
        subscription = Subscription.objects.get(user=member, product=product)
        assert subscription.hwid_digest == hwid_digest("machine-A")
        assert "machine-A" not in subscription.hwid_digest
        assert _check(key=code, hwid="machine-A").valid
        assert not _check(key=code, hwid="machine-B").valid
        # the account mode is bound to the same machine
        assert not _check(username="member", password="correct horse battery",
                          hwid="machine-B").valid
        assert _reasons() == ["hwid_mismatch", "hwid_mismatch"]

        subscription_reset_hwid(actor=moderator, subscription_id=subscription.pk)
        entry = LogEntry.objects.get(action="subscription.reset_hwid")
        assert entry.category == "moderation" and entry.actor == moderator
        assert entry.target == member and entry.data["had_hwid"] is True
        assert _check(key=code, hwid="machine-B").valid
        assert not _check(key=code, hwid="machine-A").valid
        subscription.refresh_from_db()
        assert subscription.hwid_digest == hwid_digest("machine-B")

    def test_every_refusal_looks_the_same_but_is_journaled(
        self, moderator, admin, member, roles, product
    ):
        other_product = ProductFactory.create(slug="other")
        code = _redeemed_key(moderator, member, product)
        free = keys_generate(actor=moderator, product=product, duration=timedelta(days=1),
                             count=1).codes[0]
        banned_code, lapsed_code = _refusal_world(moderator, roles, product)
        assert _check(key=code, hwid="machine-A").valid

        cases = {
            "key_malformed": {"key": "not a key"},
            "key_unknown": {"key": "ZSPB-00000-00000-00000-00000"},
            "key_not_redeemed": {"key": free},
            "product_mismatch": {"key": code, "product": other_product.slug},
            "user_banned": {"key": banned_code},
            "subscription_expired": {"key": lapsed_code},
            "hwid_mismatch": {"key": code, "hwid": "machine-B"},
            "bad_credentials": {"username": "member", "password": "wrong"},
            "no_subscription": {"username": "nosub", "password": "correct horse battery"},
            "product_unknown": {"username": "member", "password": "correct horse battery",
                                "product": "nope"},
        }
        outside = []
        for mode in cases.values():
            answer = _check(**mode)
            data = _decode(answer)
            # Every refusal names what it answers, exactly as a grant would
            assert data.pop("nonce") == NONCE
            assert data.pop("product") == mode.get("product", "loader")
            assert data.pop("hwid_digest") == binding_digest("hwid", mode.get("hwid", "machine-A"))
            if "key" in mode:
                assert data.pop("key_digest") == binding_digest("key", mode["key"])
            else:
                assert data.pop("account_digest") == binding_digest("account", mode["username"])
            del data["timestamp"]
            outside.append(data)
        assert all(data == {"v": 2, "valid": False} for data in outside)
        assert _reasons() == list(cases)

        # banned by account too, and the banned user is named in the journal
        assert not _check(username="banned", password="correct horse battery").valid
        last = LogEntry.objects.filter(action="license.check_failed").latest("id")
        assert last.data["reason"] == "user_banned" and last.actor.username == "banned"

    def test_exactly_one_mode(self, member, product):
        for mode in ({}, {"key": "k", "username": "u", "password": "p"},
                     {"username": "member"}, {"password": "x"}):
            with pytest.raises(InvalidInput):
                _check(**mode)

    def test_throttled_per_subject_across_ips(self, moderator, member, product, settings):
        limits = dict(settings.ZSPB.rate_limits, license_subject=Rate(count=3, seconds=60))
        settings.ZSPB = replace(settings.ZSPB, rate_limits=limits)
        code = _redeemed_key(moderator, member, product)
        for i in range(3):
            _check(key=code, ip=f"192.0.2.{i + 1}")
        with pytest.raises(RateLimited):
            _check(key=code.lower(), ip="192.0.2.99")  # same key, typed differently


@pytest.mark.django_db
class TestResetHwid:
    def _bound(self, moderator, member, product):
        code = _redeemed_key(moderator, member, product)
        assert _check(key=code, product=product.slug).valid
        return Subscription.objects.get(user=member, product=product)

    def test_needs_manage_users(self, support, moderator, member, product):
        subscription = self._bound(moderator, member, product)
        with pytest.raises(PermissionDenied):
            subscription_reset_hwid(actor=support, subscription_id=subscription.pk)
        with pytest.raises(PermissionDenied):
            subscription_reset_hwid(actor=member, subscription_id=subscription.pk)
        subscription.refresh_from_db()
        assert subscription.hwid_digest

    def test_must_outrank_the_owner(self, moderator, admin, roles, product):
        peer = UserFactory.create(role=roles["moderator"])
        subscription = self._bound(admin, peer, product)
        with pytest.raises(RankViolation):
            subscription_reset_hwid(actor=moderator, subscription_id=subscription.pk)
        own = self._bound(admin, moderator, ProductFactory.create(slug="own"))
        with pytest.raises(RankViolation):
            subscription_reset_hwid(actor=moderator, subscription_id=own.pk)
        subscription_reset_hwid(actor=admin, subscription_id=subscription.pk)
        subscription.refresh_from_db()
        assert subscription.hwid_digest == ""

    def test_unknown_subscription_and_banned_staff(self, moderator, admin, product):
        with pytest.raises(NotFound):
            subscription_reset_hwid(actor=moderator, subscription_id=999_999)
        ban_create(actor=admin, user=moderator, reason="x")
        moderator.refresh_from_db()
        with pytest.raises(UserBanned):
            subscription_reset_hwid(actor=moderator, subscription_id=999_999)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_first_checks_bind_one_machine(moderator, member, product):
    code = _redeemed_key(moderator, member, product)

    def first_check(i):
        return license_check(request=_request(f"192.0.2.{i + 1}"), ip=f"192.0.2.{i + 1}",
                             product="loader", hwid=f"machine-{i}", nonce=NONCE, key=code)

    results = run_concurrently(first_check, threads=8)
    assert not [r for r in results if isinstance(r, Exception)], results
    winners = [i for i, answer in enumerate(results) if answer.valid]
    assert len(winners) == 1
    subscription = Subscription.objects.get(user=member, product=product)
    assert subscription.hwid_digest == hwid_digest(f"machine-{winners[0]}")
    assert _reasons().count("hwid_mismatch") == 7


def test_binding_digest_is_the_documented_sha256():
    # The README's worked values: a loader in any language must get exactly these.
    assert binding_digest("hwid", "4C4C4544-0042-3510-8052-B4C04F4E3732") == (
        "6ca0ff3363168cfd1c8109e64beb29b33c6224b10cbcb3efae00b69649698a4b")
    assert binding_digest("key", "ZSPB-7KQ2M-XW4PA-93HNC-RT6VE") == (
        "996d6880f78f37414288c40a49a3229e97291b1748cd74eb84adc3f58f833dfa")
    assert binding_digest("account", "member") == hashlib.sha256(
        b"zspb-account-v1:member").hexdigest() == (
        "57b6ad8ab3c66225d84f34efdd6b6376c2e95dc6e524635099ae30936bf601c2")
    # the key exactly as sent: another typing of the same key is another digest
    assert binding_digest("key", "zspb-7kq2m-xw4pa-93hnc-rt6ve") != binding_digest(
        "key", "ZSPB-7KQ2M-XW4PA-93HNC-RT6VE")


@pytest.mark.django_db
def test_valid_answer_names_the_latest_published_release(moderator, member, product):
    from core.models import LoaderRelease

    LoaderRelease.objects.create(version="1.0", sha256="a" * 64, size=1, published=True)
    LoaderRelease.objects.create(version="2.0", sha256="b" * 64, size=1, published=True)
    LoaderRelease.objects.create(version="3.0-draft", sha256="c" * 64, size=1, published=False)
    data = _decode(_check(key=_redeemed_key(moderator, member, product)))
    assert (data["latest_version"], data["latest_sha256"]) == ("2.0", "b" * 64)
