from __future__ import annotations

import base64
import io
import json
import time
import urllib.request
from dataclasses import replace
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from nacl.signing import SigningKey, VerifyKey

import api.license_client as license_client
from api.license_client import (
    LicenseServerError,
    LicenseVerificationError,
    binding_digest,
    check_license,
    verify_answer,
)
from config.behaviour import Rate
from core.models import LogEntry, Subscription
from core.services.bans import ban_create
from core.services.keys import key_redeem, keys_generate
from core.services.licensing import subscription_reset_hwid
from tests.api.conftest import assert_error
from tests.core.services.test_licensing import _refusal_world
from tests.factories import ProductFactory, UserFactory

CHECK = "/api/license/check"
NONCE = "0123456789abcdef0123"
PASSWORD = "correct horse battery"
LIVE = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_throttles():
    cache.clear()


@pytest.fixture
def pinned(client, settings):
    """The key a loader author pins: read from the endpoint, checked against the seed."""
    response = client.get("/api/license/public-key")
    assert response.status_code == 200
    body = response.json()
    assert body["algorithm"] == "Ed25519"
    seed = bytes.fromhex(settings.LICENSE_SIGNING_KEY)
    assert base64.b64decode(body["public_key"]) == bytes(SigningKey(seed).verify_key)
    return body["public_key"]


def _key_for(staff, user, product, days=30):
    code = keys_generate(actor=staff, product=product, duration=timedelta(days=days),
                         count=1).codes[0]
    key_redeem(user=user, code=code)
    return code


def _post(client, body, ip="198.51.100.7"):
    return client.post(CHECK, data=json.dumps(body), content_type="application/json",
                       REMOTE_ADDR=ip)


def _payload(response, public_key):
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"payload", "signature"}
    raw = base64.b64decode(body["payload"])
    VerifyKey(base64.b64decode(public_key)).verify(raw, base64.b64decode(body["signature"]))
    return json.loads(raw)


def _limit(settings, **rates):
    limits = dict(settings.ZSPB.rate_limits, **rates)
    settings.ZSPB = replace(settings.ZSPB, rate_limits=limits)


class ReplayOpener:
    """A man in the middle that answers every request with the first answer it saw."""

    def __init__(self):
        self.recorded = None

    def open(self, request, data=None, timeout=None):
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = response.read()
        if self.recorded is None:
            self.recorded = body
        return io.BytesIO(self.recorded)


class TamperOpener:
    """A man in the middle that rewrites the payload without the private key."""

    def open(self, request, data=None, timeout=None):
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = json.loads(response.read())
        payload = json.loads(base64.b64decode(body["payload"]))
        payload.update(valid=True, product="loader", username="mallory",
                       expires_at="2099-01-01T00:00:00+00:00")
        body["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
        return io.BytesIO(json.dumps(body).encode())


class RelayOpener:
    """A relay that swaps the loader's machine and key for its own, keeping the nonce."""

    def __init__(self, **swap):
        self.swap = swap

    def open(self, request, data=None, timeout=None):
        body = json.loads(request.data)
        body.update(self.swap)
        request.data = json.dumps(body).encode()
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return io.BytesIO(response.read())


@LIVE
class TestReferenceClient:
    def test_valid_by_key_and_by_account(self, live_server, pinned, moderator, member, product):
        code = _key_for(moderator, member, product)
        result = check_license(live_server.url, product="loader", hwid="hw-1", key=code,
                               public_key_b64=pinned)
        subscription = Subscription.objects.get(user=member, product=product)
        assert result.valid and result.product == "loader" and result.username == "member"
        assert result.expires_at == subscription.expires_at
        assert abs(result.timestamp - time.time()) < 5
        by_account = check_license(live_server.url + "/", product="loader", hwid="hw-1",
                                   username="member", password=PASSWORD,
                                   public_key_b64=pinned)
        assert by_account.valid and by_account.nonce != result.nonce

    def test_hwid_bind_refuse_reset_rebind(self, live_server, pinned, moderator, member,
                                           product):
        code = _key_for(moderator, member, product)

        def check(hwid):
            return check_license(live_server.url, product="loader", hwid=hwid, key=code,
                                 public_key_b64=pinned).valid

        assert check("first-pc")
        assert check("first-pc")
        assert not check("second-pc")
        subscription = Subscription.objects.get(user=member, product=product)
        subscription_reset_hwid(actor=moderator, subscription_id=subscription.pk)
        assert check("second-pc")
        assert not check("first-pc")

    def test_banned_and_expired_refused(self, live_server, pinned, moderator, member, roles,
                                        product):
        code = _key_for(moderator, member, product)
        lapsed = UserFactory.create(username="lapsed", role=roles["user"])
        lapsed_code = _key_for(moderator, lapsed, product)
        Subscription.objects.filter(user=lapsed).update(
            expires_at=timezone.now() - timedelta(minutes=1))
        ban_create(actor=moderator, user=member, reason="chargeback")
        for kwargs in ({"key": code}, {"username": "member", "password": PASSWORD},
                       {"key": lapsed_code}, {"username": "lapsed", "password": PASSWORD}):
            result = check_license(live_server.url, product="loader", hwid="hw",
                                   public_key_b64=pinned, **kwargs)
            assert result.valid is False and result.product is None
        reasons = list(LogEntry.objects.filter(action="license.check_failed")
                       .order_by("id").values_list("data__reason", flat=True))
        assert reasons == ["user_banned", "user_banned", "subscription_expired",
                           "subscription_expired"]

    def test_wrong_pinned_key_is_a_bad_signature(self, live_server, moderator, member,
                                                 product):
        code = _key_for(moderator, member, product)
        impostor = base64.b64encode(bytes(SigningKey.generate().verify_key)).decode()
        with pytest.raises(LicenseVerificationError, match="signature"):
            check_license(live_server.url, product="loader", hwid="hw", key=code,
                          public_key_b64=impostor)

    def test_tampered_answer_is_a_bad_signature(self, live_server, pinned, product):
        with pytest.raises(LicenseVerificationError, match="signature"):
            check_license(live_server.url, product="loader", hwid="hw",
                          key="ZSPB-00000-00000-00000-00000", public_key_b64=pinned,
                          opener=TamperOpener())

    def test_replayed_answer_fails_the_nonce(self, live_server, pinned, moderator, member,
                                             product):
        code = _key_for(moderator, member, product)
        replay = ReplayOpener()
        assert check_license(live_server.url, product="loader", hwid="hw", key=code,
                             public_key_b64=pinned, opener=replay).valid
        with pytest.raises(LicenseVerificationError, match="nonce"):
            check_license(live_server.url, product="loader", hwid="hw", key=code,
                          public_key_b64=pinned, opener=replay)

    def test_stale_answer_refused(self, live_server, pinned, moderator, member, product,
                                  monkeypatch):
        code = _key_for(moderator, member, product)
        monkeypatch.setattr(license_client, "_now", lambda: time.time() + 301)
        with pytest.raises(LicenseVerificationError, match="stale"):
            check_license(live_server.url, product="loader", hwid="hw", key=code,
                          public_key_b64=pinned, max_skew=300)
        monkeypatch.setattr(license_client, "_now", lambda: time.time() - 301)
        with pytest.raises(LicenseVerificationError, match="stale"):
            check_license(live_server.url, product="loader", hwid="hw", key=code,
                          public_key_b64=pinned, max_skew=300)

    def test_throttled_answer_is_a_server_error(self, live_server, pinned, settings):
        _limit(settings, license_ip=Rate(count=1, seconds=60))
        kwargs = {"product": "loader", "hwid": "hw", "key": "ZSPB-00000-00000-00000-00000",
                  "public_key_b64": pinned}
        assert check_license(live_server.url, **kwargs).valid is False
        with pytest.raises(LicenseServerError) as caught:
            check_license(live_server.url, **kwargs)
        assert caught.value.status == 429 and caught.value.retry_after

    def test_relay_from_another_machine_is_refused(self, live_server, pinned, moderator,
                                                   member, roles, product):
        # A relay holding one bound licence answers every loader with a check of its own.
        relay_code = _key_for(moderator, member, product)
        assert check_license(live_server.url, product="loader", hwid="relay-pc", key=relay_code,
                             public_key_b64=pinned).valid
        victim = UserFactory.create(username="victim", role=roles["user"])
        victim_code = _key_for(moderator, victim, product)
        relay = RelayOpener(hwid="relay-pc", key=relay_code)
        with pytest.raises(LicenseVerificationError, match="another machine"):
            check_license(live_server.url, product="loader", hwid="victim-pc", key=victim_code,
                          public_key_b64=pinned, opener=relay)
        # same machine id, another licence: still not the loader's answer
        relay = RelayOpener(hwid="relay-pc", key=relay_code)
        with pytest.raises(LicenseVerificationError, match="another licence"):
            check_license(live_server.url, product="loader", hwid="relay-pc", key=victim_code,
                          public_key_b64=pinned, opener=relay)

    def test_client_refuses_mixed_modes(self, pinned):
        with pytest.raises(ValueError, match="either"):
            check_license("http://127.0.0.1:9", product="loader", hwid="hw", key="k",
                          username="u", password="p", public_key_b64=pinned)


@pytest.mark.django_db
class TestCheckEndpoint:
    def test_every_failure_answers_identically(self, client, pinned, moderator, admin, roles,
                                               member, product):
        ProductFactory.create(slug="other")
        code = _key_for(moderator, member, product)
        free = keys_generate(actor=moderator, product=product, duration=timedelta(days=1),
                             count=1).codes[0]
        banned_code, lapsed_code = _refusal_world(moderator, roles, product)
        base = {"product": "loader", "hwid": "pc-1", "nonce": NONCE}
        assert _payload(_post(client, {**base, "key": code}), pinned)["valid"] is True

        cases = [
            ("key_malformed", {"key": "definitely-not-a-key"}),
            ("key_unknown", {"key": "ZSPB-00000-00000-00000-00000"}),
            ("key_not_redeemed", {"key": free}),
            ("product_mismatch", {"key": code, "product": "other"}),
            ("product_mismatch", {"key": code, "product": "never-heard-of-it"}),
            ("user_banned", {"key": banned_code}),
            ("subscription_expired", {"key": lapsed_code}),
            ("hwid_mismatch", {"key": code, "hwid": "pc-2"}),
            ("bad_credentials", {"username": "member", "password": "wrong"}),
            ("bad_credentials", {"username": "ghost", "password": PASSWORD}),
            ("user_banned", {"username": "banned", "password": PASSWORD}),
            ("no_subscription", {"username": "nosub", "password": PASSWORD}),
            ("product_unknown", {"username": "member", "password": PASSWORD,
                                 "product": "nope"}),
        ]
        sizes: dict[tuple[str, ...], set[int]] = {}
        outside = []
        for _, case in cases:
            body = {**base, **case}
            response = _post(client, body)
            data = _payload(response, pinned)
            assert abs(data.pop("timestamp") - time.time()) < 5
            # What the request asked is echoed (signed) in every refusal, nothing more
            echoed = {"nonce": NONCE, "product": body["product"],
                      "hwid_digest": binding_digest("hwid", body["hwid"])}
            if "key" in case:
                echoed["key_digest"] = binding_digest("key", case["key"])
            else:
                echoed["account_digest"] = binding_digest("account", case["username"])
            assert {name: data.pop(name) for name in echoed} == echoed
            outside.append(data)
            sizes.setdefault((body["product"], *sorted(echoed)), set()).add(len(response.content))
        assert outside == [{"v": 2, "valid": False}] * len(cases)
        # not even the length differs between reasons, for the same product and mode
        assert all(len(lengths) == 1 for lengths in sizes.values()), sizes
        reasons = list(LogEntry.objects.filter(action="license.check_failed")
                       .order_by("id").values_list("data__reason", flat=True))
        assert reasons == [reason for reason, _ in cases]
        assert not LogEntry.objects.filter(action="license.check_failed", ip="").exists()

    def test_control_characters_do_not_break_anything(self, client, pinned):
        # NUL cannot be stored by PostgreSQL: it must stay out of the queries and the journal.
        for field in ("hwid", "key", "nonce"):
            body = {"product": "loader", "hwid": "h", "nonce": NONCE, "key": "k",
                    field: "\x00" * 16}
            assert _payload(_post(client, body), pinned)["valid"] is False
        body = {"product": "loader", "hwid": "h", "nonce": NONCE, "username": "u",
                "password": "\x00"}
        assert _payload(_post(client, body), pinned)["valid"] is False

    def test_nonce_is_echoed_exactly(self, client, pinned):
        for nonce in ("a" * 16, "Z" * 64, "ключ-🔑-nonce-1234"):
            body = {"product": "loader", "hwid": "h", "nonce": nonce, "key": "x"}
            assert _payload(_post(client, body), pinned)["nonce"] == nonce

    @pytest.mark.parametrize("body", [
        {"product": "loader", "hwid": "h", "nonce": NONCE},
        {"product": "loader", "hwid": "h", "nonce": NONCE, "key": "k", "username": "u",
         "password": "p"},
        {"product": "loader", "hwid": "h", "nonce": NONCE, "username": "u"},
        {"product": "loader", "hwid": "h", "nonce": "short", "key": "k"},
        {"product": "loader", "hwid": "h", "nonce": "n" * 65, "key": "k"},
        {"product": "loader", "hwid": "", "nonce": NONCE, "key": "k"},
        {"product": "loader", "hwid": "h" * 129, "nonce": NONCE, "key": "k"},
        {"product": "loader", "hwid": 12345, "nonce": NONCE, "key": "k"},
        {"product": "loader", "hwid": "h", "nonce": NONCE, "key": 123},
        {"product": "loader", "hwid": "h", "nonce": NONCE, "key": False},
        {"product": "lo ader", "hwid": "h", "nonce": NONCE, "key": "k"},
        {"product": "loader", "hwid": "h", "nonce": NONCE, "key": "k" * 65},
        {"product": "loader", "hwid": "h", "nonce": NONCE, "username": "u",
         "password": "p" * 129},
        {"product": "loader", "hwid": "h", "nonce": NONCE, "key": "k", "admin": True},
        {"product": "loader", "hwid": "h", "nonce": NONCE, "username": "a\x00b",
         "password": "p"},
        {"product": "loader", "hwid": "h", "nonce": NONCE, "username": "u" * 151,
         "password": "p"},
        ["not", "an", "object"],
    ])
    def test_malformed_requests_are_422(self, client, body):
        assert_error(_post(client, body), 422, "invalid_input")

    def test_throttled_per_ip(self, client, settings):
        _limit(settings, license_ip=Rate(count=2, seconds=60))
        body = {"product": "loader", "hwid": "h", "nonce": NONCE}
        for i in range(2):
            assert _post(client, {**body, "key": f"key-{i}"}).status_code == 200
        response = _post(client, {**body, "key": "key-3"})
        assert_error(response, 429, "rate_limited")
        assert int(response["Retry-After"]) >= 1
        assert _post(client, {**body, "key": "key-4"}, ip="198.51.100.8").status_code == 200

    def test_throttled_per_subject_across_ips(self, client, settings, member):
        _limit(settings, license_subject=Rate(count=2, seconds=60))
        body = {"product": "loader", "hwid": "h", "nonce": NONCE, "password": "x"}
        assert _post(client, {**body, "username": "member"}, ip="198.51.100.1").status_code == 200
        assert _post(client, {**body, "username": "MEMBER"}, ip="198.51.100.2").status_code == 200
        response = _post(client, {**body, "username": "Member"}, ip="198.51.100.3")
        assert_error(response, 429, "rate_limited")
        assert LogEntry.objects.filter(action="ratelimit.exceeded",
                                       data__scope="license_subject").exists()

    def test_password_guessing_locks_out_through_axes(self, client, member, settings):
        body = {"product": "loader", "hwid": "h", "nonce": NONCE, "username": "member"}
        for i in range(settings.AXES_FAILURE_LIMIT - 1):
            assert _post(client, {**body, "password": f"guess-{i}"}).status_code == 200
        # the attempt that reaches the limit and every later one, even with the right password
        for password in ("last-guess", PASSWORD):
            assert_error(_post(client, {**body, "password": password}), 429, "login_locked")
        reasons = list(LogEntry.objects.filter(action="license.check_failed")
                       .order_by("id").values_list("data__reason", flat=True))
        assert reasons[-1] == "locked_out"
        # another address is not locked out (a victim cannot be locked out from elsewhere)
        ok = _post(client, {**body, "password": PASSWORD}, ip="198.51.100.99")
        assert ok.status_code == 200

    def test_public_key_is_anonymous_and_stable(self, client, pinned):
        assert client.get("/api/license/public-key").json()["public_key"] == pinned


def _seed(staff, roles, product, count):
    for _ in range(count):
        user = UserFactory.create(role=roles["user"])
        _key_for(staff, user, product)


def _queries(client, body):
    with CaptureQueriesContext(connection) as ctx:
        response = _post(client, body)
    assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.django_db
class TestQueryCounts:
    def test_key_check_is_constant(self, client, moderator, member, roles, product,
                                   django_assert_max_num_queries):
        code = _key_for(moderator, member, product)
        body = {"product": "loader", "hwid": "pc", "nonce": NONCE, "key": code}
        first_bind = _queries(client, body)
        small = _queries(client, body)
        _seed(moderator, roles, product, 50)
        with django_assert_max_num_queries(small):
            _post(client, body)
        assert _queries(client, body) == small
        # The key, its owner, the owner's subscription and the latest release in one query; a
        # success is counted in Redis, not journaled. Binding the machine on the first check is
        # an UPDATE and its journal entry.
        assert (first_bind, small) == (3, 1)

    def test_account_check_is_constant(self, client, moderator, member, roles, product,
                                       django_assert_max_num_queries):
        _key_for(moderator, member, product)
        body = {"product": "loader", "hwid": "pc", "nonce": NONCE, "username": "member",
                "password": PASSWORD}
        _queries(client, body)
        small = _queries(client, body)
        _seed(moderator, roles, product, 50)
        with django_assert_max_num_queries(small):
            _post(client, body)
        with django_assert_max_num_queries(5):  # 5th: the latest release, signed into the answer
            _post(client, body)
        refused = {**body, "password": "wrong"}
        _queries(client, refused)
        refused_small = _queries(client, refused)
        _seed(moderator, roles, product, 10)
        assert _queries(client, refused) == refused_small


@pytest.mark.django_db
class TestAnswerBinding:
    """A real signed answer, verified as the reference client does, against other requests."""

    def _answer(self, client, **body):
        body = {"product": "loader", "hwid": "pc-A", "nonce": NONCE, **body}
        response = _post(client, body)
        assert response.status_code == 200
        return response.json()

    def _verify(self, answer, pinned, **asked):
        asked = {"product": "loader", "hwid": "pc-A", "nonce": NONCE, **asked}
        return verify_answer(answer, public_key_b64=pinned, **asked)

    def test_own_answer_is_accepted(self, client, pinned, moderator, member, product):
        code = _key_for(moderator, member, product)
        data = self._verify(self._answer(client, key=code), pinned, key=code)
        assert data["valid"] is True and data["v"] == 2
        refused = self._verify(self._answer(client, key="ZSPB-00000-00000-00000-00000"),
                               pinned, key="ZSPB-00000-00000-00000-00000")
        assert refused["valid"] is False
        by_account = self._answer(client, username="member", password=PASSWORD)
        assert self._verify(by_account, pinned, username="member")["valid"] is True

    def test_answer_for_another_machine_product_or_licence_is_refused(
        self, client, pinned, moderator, member, product
    ):
        ProductFactory.create(slug="other")
        code = _key_for(moderator, member, product)
        answer = self._answer(client, key=code)
        for asked, error in (
            ({"key": code, "hwid": "pc-B"}, "another machine"),
            ({"key": code, "product": "other"}, "another product"),
            ({"key": "ZSPB-11111-11111-11111-11111"}, "another licence"),
            ({"key": code.lower()}, "another licence"),  # the key exactly as sent
            ({"username": "member"}, "another licence"),
        ):
            with pytest.raises(LicenseVerificationError, match=error):
                self._verify(answer, pinned, **asked)

    def test_refusal_for_another_machine_is_refused_too(self, client, pinned):
        answer = self._answer(client, key="ZSPB-00000-00000-00000-00000")
        with pytest.raises(LicenseVerificationError, match="another machine"):
            self._verify(answer, pinned, key="ZSPB-00000-00000-00000-00000", hwid="pc-B")

    def test_version_1_payload_is_refused(self, pinned, settings):
        # An answer signed by the right key but without the binding (the old format).
        raw = json.dumps({"valid": True, "nonce": NONCE, "timestamp": int(time.time()),
                          "product": "loader", "expires_at": "2099-01-01T00:00:00+00:00"},
                         sort_keys=True, separators=(",", ":")).encode()
        signature = SigningKey(bytes.fromhex(settings.LICENSE_SIGNING_KEY)).sign(raw).signature
        answer = {"payload": base64.b64encode(raw).decode(),
                  "signature": base64.b64encode(signature).decode()}
        with pytest.raises(LicenseVerificationError, match="version"):
            self._verify(answer, pinned, key="k")
