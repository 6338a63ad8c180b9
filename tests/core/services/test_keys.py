from __future__ import annotations

import math
import re
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from core.crypto import ALPHABET
from core.errors import InvalidInput, KeyInvalid, KeyUnavailable, PermissionDenied, UserBanned
from core.models import LicenseKey, LogEntry, Subscription
from core.services.bans import ban_create
from core.services.keys import key_lookup_digest, key_redeem, keys_generate

KEY_RE = re.compile(r"^ZSPB(-[0-9A-HJKMNP-TV-Z]{5}){4}$")


def _generate(actor, product, count=1, duration=timedelta(days=30), **kw):
    return keys_generate(actor=actor, product=product, duration=duration, count=count, **kw)


@pytest.mark.django_db
class TestGenerate:
    def test_codes_are_typeable_and_carry_100_bits(self, moderator, product):
        batch = _generate(moderator, product, count=50)
        assert len(batch.codes) == 50
        for code in batch.codes:
            assert KEY_RE.match(code), code
        body_chars = len(batch.codes[0].replace("-", "")) - len("ZSPB")
        assert body_chars * math.log2(len(ALPHABET)) >= 100

    def test_characters_are_uniform(self, moderator, product):
        codes = _generate(moderator, product, count=4000).codes
        counts = Counter("".join(c[5:].replace("-", "") for c in codes))
        expected = 4000 * 20 / len(ALPHABET)
        assert set(counts) == set(ALPHABET)
        chi2 = sum((n - expected) ** 2 / expected for n in counts.values())
        # 31 degrees of freedom: p < 1e-6 above ~80; a biased generator lands far beyond it.
        assert chi2 < 80

    @pytest.mark.slow
    def test_hundred_thousand_unique_in_one_call(self, moderator, product):
        batch = _generate(moderator, product, count=100_000)
        assert len(set(batch.codes)) == 100_000
        assert LicenseKey.objects.filter(batch=batch.batch).count() == 100_000
        assert LicenseKey.objects.values("code_digest").distinct().count() == 100_000

    def test_lookup_by_digest_and_no_plaintext_stored(self, moderator, product):
        batch = _generate(moderator, product, count=5, note="stream giveaway")
        for code in batch.codes:
            key = LicenseKey.objects.get(code_digest=key_lookup_digest(code))
            assert key.code == code  # decrypted for staff
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM core_licensekey")
            raw_rows = " ".join(str(row) for row in cursor.fetchall())
        for code in batch.codes:
            assert code not in raw_rows
            assert code.replace("-", "")[4:] not in raw_rows

    def test_lookup_tolerates_typing(self, moderator, product):
        code = _generate(moderator, product).codes[0]
        sloppy = code.lower().replace("-", " ").replace("0", "o").replace("1", "l")
        assert key_lookup_digest(sloppy) == key_lookup_digest(code)
        assert key_lookup_digest(code[5:]) == key_lookup_digest(code)  # prefix optional
        assert key_lookup_digest("ZSPB-SHORT") is None
        assert key_lookup_digest(code + "X") is None

    def test_random_part_starting_with_prefix_letters(self):
        from core.services.keys import key_code_digest

        body = "ZSPB0000000000000000"
        assert key_lookup_digest("ZSPB0-00000-00000-00000") == key_code_digest(body)
        assert key_lookup_digest("ZSPB-ZSPB0-00000-00000-00000") == key_code_digest(body)

    def test_free_keys_keep_their_duration_and_journal(self, moderator, product):
        batch = _generate(moderator, product, count=3, duration=timedelta(days=7), note="n")
        keys = LicenseKey.objects.filter(batch=batch.batch)
        assert {k.status for k in keys} == {LicenseKey.Status.FREE}
        assert {k.duration for k in keys} == {timedelta(days=7)}
        entry = LogEntry.objects.get(action="keys.generate")
        assert entry.actor == moderator and entry.data["count"] == 3

    def test_rights(self, member, support, admin, product):
        for actor in (member, support):
            with pytest.raises(PermissionDenied):
                _generate(actor, product)
        assert len(_generate(admin, product).codes) == 1

    @pytest.mark.parametrize(
        ("count", "duration"),
        [(0, timedelta(days=1)), (100_001, timedelta(days=1)), (1, timedelta(0)),
         (1, timedelta(days=4000))],
    )
    def test_bad_input(self, moderator, product, count, duration):
        with pytest.raises(InvalidInput):
            _generate(moderator, product, count=count, duration=duration)
        assert not LicenseKey.objects.exists()


@pytest.mark.django_db
class TestRedeem:
    def test_clock_starts_at_redeem(self, moderator, member, product):
        code = _generate(moderator, product, duration=timedelta(days=30)).codes[0]
        before = timezone.now()
        sub = key_redeem(user=member, code=code)
        assert before + timedelta(days=30) <= sub.expires_at <= timezone.now() + timedelta(days=30)
        key = LicenseKey.objects.get()
        assert key.status == LicenseKey.Status.REDEEMED and key.redeemed_by == member

    def test_extends_active_subscription(self, moderator, member, product):
        first, second = _generate(moderator, product, count=2, duration=timedelta(days=10)).codes
        sub = key_redeem(user=member, code=first)
        end = sub.expires_at
        sub = key_redeem(user=member, code=second)
        assert sub.expires_at == end + timedelta(days=10)
        assert Subscription.objects.count() == 1

    def test_restarts_expired_subscription_from_now(self, moderator, member, product):
        code = _generate(moderator, product, duration=timedelta(days=10)).codes[0]
        Subscription.objects.create(user=member, product=product,
                                    expires_at=timezone.now() - timedelta(days=100))
        sub = key_redeem(user=member, code=code)
        assert sub.expires_at > timezone.now() + timedelta(days=9)

    def test_exactly_once(self, moderator, member, support, product):
        code = _generate(moderator, product).codes[0]
        key_redeem(user=member, code=code)
        with pytest.raises(KeyUnavailable):
            key_redeem(user=member, code=code)
        with pytest.raises(KeyUnavailable):
            key_redeem(user=support, code=code)

    def test_unknown_and_malformed(self, member):
        with pytest.raises(KeyInvalid):
            key_redeem(user=member, code="ZSPB-AAAAA-AAAAA-AAAAA-AAAAA")
        with pytest.raises(KeyInvalid):
            key_redeem(user=member, code="' OR 1=1 --")

    def test_redeem_by_passed(self, moderator, member, product):
        code = _generate(moderator, product,
                         redeem_by=timezone.now() + timedelta(seconds=1)).codes[0]
        LicenseKey.objects.update(redeem_by=timezone.now() - timedelta(seconds=1))
        with pytest.raises(KeyUnavailable):
            key_redeem(user=member, code=code)

    def test_revoked(self, moderator, member, product):
        code = _generate(moderator, product).codes[0]
        LicenseKey.objects.update(status=LicenseKey.Status.REVOKED)
        with pytest.raises(KeyUnavailable):
            key_redeem(user=member, code=code)

    def test_banned_user_cannot_redeem(self, moderator, member, product):
        code = _generate(moderator, product).codes[0]
        ban_create(actor=moderator, user=member, reason="spam")
        with pytest.raises(UserBanned):
            key_redeem(user=member, code=code)
        assert LicenseKey.objects.get().status == LicenseKey.Status.FREE

    def test_answer_is_the_stored_row_in_each_case(self, moderator, member, product,
                                                   monkeypatch):
        """New, extended and lapsed subscriptions: what redeem returns, journals and pushes
        is the row as stored, the machine binding survives, updated_at follows each write,
        and a subscription ending exactly at the redeem's `now` has lapsed (the model's
        active_at)."""
        import core.services.keys as keys_service

        events: list[tuple[str, bool]] = []
        monkeypatch.setattr(keys_service, "member_notify", lambda *, user_id, event, data:
                            events.append((event, data["extended"])))
        codes = _generate(moderator, product, count=3, duration=timedelta(days=10)).codes
        start = timezone.now()
        clock = {"now": start}
        # Every clock read in the redeem gives the moment the test chose.
        monkeypatch.setattr(timezone, "now", lambda: clock["now"])

        def redeem(code, at):
            clock["now"] = at
            sub = key_redeem(user=member, code=code)
            stored = Subscription.objects.get(pk=sub.pk)
            fields = ("started_at", "expires_at", "hwid_digest", "hwid_self_reset_at",
                      "updated_at", "user_id", "product_id")
            assert [getattr(sub, f) for f in fields] == [getattr(stored, f) for f in fields]
            assert (sub.product.slug, sub.product.name) == (product.slug, product.name)
            entry = LogEntry.objects.filter(action="key.redeem").latest("pk")
            key = LicenseKey.objects.get(redeemed_by=member, redeemed_at=at)
            assert entry.actor == member and entry.data == {
                "key_id": key.pk, "product": product.slug,
                "expires_at": sub.expires_at.isoformat()}
            return stored

        new = redeem(codes[0], start)
        assert (new.started_at, new.expires_at, new.updated_at) == (
            start, start + timedelta(days=10), start)
        bound_at = start - timedelta(hours=1)
        Subscription.objects.filter(pk=new.pk).update(hwid_digest="d" * 64,
                                                      hwid_self_reset_at=bound_at)
        later = start + timedelta(seconds=1)
        extended = redeem(codes[1], later)
        assert (extended.started_at, extended.expires_at, extended.updated_at) == (
            start, start + timedelta(days=20), later)
        assert (extended.hwid_digest, extended.hwid_self_reset_at) == ("d" * 64, bound_at)
        end = start + timedelta(days=30)
        Subscription.objects.filter(pk=new.pk).update(expires_at=end)
        lapsed = redeem(codes[2], end)
        assert (lapsed.started_at, lapsed.expires_at, lapsed.updated_at) == (
            end, end + timedelta(days=10), end)
        assert (lapsed.hwid_digest, lapsed.hwid_self_reset_at) == ("d" * 64, bound_at)
        assert Subscription.objects.count() == 1
        assert events == [("key_redeemed", False), ("subscription_extended", True),
                          ("key_redeemed", False)]

    def test_refusals_write_nothing(self, moderator, member, product):
        code = _generate(moderator, product).codes[0]
        LicenseKey.objects.update(status=LicenseKey.Status.REVOKED)
        with pytest.raises(KeyUnavailable):
            key_redeem(user=member, code=code)
        with pytest.raises(KeyInvalid):
            key_redeem(user=member, code="ZSPB-AAAAA-AAAAA-AAAAA-AAAAA")
        assert not Subscription.objects.exists()
        assert LicenseKey.objects.get().redeemed_by is None
        assert [e.data for e in LogEntry.objects.filter(action__startswith="key.redeem")
                .order_by("pk")] == [{"reason": "key_unavailable"}, {"reason": "key_invalid"}]
