"""Successful licence checks are counted per subscription and day (Redis, flushed every
minute), not journaled one by one; refusals stay journaled."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

import pytest
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import core.cache
from core.models import LicenseCheckDay, LogEntry, Subscription
from core.services import licence_counts
from core.services.licence_counts import license_check_count, license_checks_flush
from core.tasks import flush_license_check_counts
from tests.core.services.test_licensing import _check, _redeemed_key


@pytest.fixture(autouse=True)
def _no_outage_left_over():
    core.cache._outages.clear()
    yield
    core.cache._outages.clear()


@pytest.fixture
def subscription(moderator, member, product):
    code = _redeemed_key(moderator, member, product)
    sub: Any = Subscription.objects.get(user=member, product=product)
    sub.code = code
    return sub


def _counts() -> dict[tuple[int, date], int]:
    return {(row.subscription_id, row.day): row.count for row in LicenseCheckDay.objects.all()}


def _today() -> date:
    return timezone.localdate()


def _keep_the_pending_batch(monkeypatch):
    """The flush's final DEL of the pending batch does nothing (other deletes still work)."""
    backend: Any = caches["default"]
    client_class = type(backend._cache.get_client(None, write=True))
    real_delete = client_class.delete
    flushing = backend.make_key(licence_counts.FLUSHING_KEY)

    def delete(self, *keys):
        if flushing in [k.decode() if isinstance(k, bytes) else k for k in keys]:
            return 0
        return real_delete(self, *keys)

    monkeypatch.setattr(client_class, "delete", delete)


@pytest.fixture
def redis_down(settings):
    # Nothing listens there: every call fails to connect and the backend degrades.
    settings.CACHES = {"default": {
        "BACKEND": "core.cache.ResilientRedisCache", "LOCATION": "redis://127.0.0.1:9/0",
        "KEY_PREFIX": "zspb", "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
    }}


@pytest.mark.django_db
class TestCounting:
    def test_success_is_counted_after_a_flush_and_not_journaled(self, subscription, member):
        for _ in range(3):
            assert _check(key=subscription.code).valid
        assert _counts() == {}  # still in Redis
        assert license_checks_flush() == 3
        assert _counts() == {(subscription.pk, _today()): 3}
        row = LicenseCheckDay.objects.get()
        assert timezone.now() - row.last_checked_at < timedelta(seconds=5)
        # Only the first check, which bound the machine, is journaled.
        entry = LogEntry.objects.get(action="license.check_ok")
        assert entry.actor == member and entry.data["hwid_bound"] is True

    def test_account_mode_counts_the_same_subscription(self, subscription):
        assert _check(username="member", password="correct horse battery").valid
        assert _check(key=subscription.code).valid
        assert flush_license_check_counts() == 2
        assert _counts() == {(subscription.pk, _today()): 2}

    def test_refusal_is_journaled_and_not_counted(self, subscription):
        assert _check(key=subscription.code).valid
        assert not _check(key=subscription.code, hwid="machine-B").valid
        assert not _check(key="ZSPB-AAAAA-AAAAA-AAAAA-AAAAA").valid
        license_checks_flush()
        assert _counts() == {(subscription.pk, _today()): 1}
        reasons = list(LogEntry.objects.filter(action="license.check_failed")
                       .order_by("id").values_list("data__reason", flat=True))
        assert reasons == ["hwid_mismatch", "key_unknown"]

    def test_success_writes_nothing_to_postgresql(self, subscription):
        assert _check(key=subscription.code).valid  # binds the machine
        with CaptureQueriesContext(connection) as ctx:
            assert _check(key=subscription.code).valid
        assert len(ctx.captured_queries) == 1  # the key lookup
        assert all(q["sql"].lstrip().upper().startswith("SELECT") for q in ctx.captured_queries)

    def test_days_are_counted_apart(self, subscription):
        yesterday = timezone.now() - timedelta(days=1)
        license_check_count(subscription_id=subscription.pk, now=yesterday)
        license_check_count(subscription_id=subscription.pk)
        license_check_count(subscription_id=subscription.pk)
        assert license_checks_flush() == 3
        assert _counts() == {(subscription.pk, timezone.localdate(yesterday)): 1,
                             (subscription.pk, _today()): 2}

    def test_counts_of_a_deleted_subscription_are_dropped(self, subscription, roles, product):
        license_check_count(subscription_id=subscription.pk)
        Subscription.objects.filter(pk=subscription.pk).delete()
        assert license_checks_flush() == 1
        assert _counts() == {}
        assert license_checks_flush() == 0


@pytest.mark.django_db
class TestFlush:
    def test_flush_twice_adds_once(self, subscription):
        for _ in range(2):
            license_check_count(subscription_id=subscription.pk)
        assert license_checks_flush() == 2
        assert license_checks_flush() == 0
        license_check_count(subscription_id=subscription.pk)
        assert license_checks_flush() == 1
        assert _counts() == {(subscription.pk, _today()): 3}

    def test_a_flush_that_died_half_way_is_finished_once(self, subscription, moderator,
                                                         product, roles, monkeypatch):
        from tests.factories import UserFactory
        other_user = UserFactory.create(role=roles["user"])
        _redeemed_key(moderator, other_user, product)
        other = Subscription.objects.get(user=other_user)
        license_check_count(subscription_id=subscription.pk)
        license_check_count(subscription_id=other.pk)
        license_check_count(subscription_id=other.pk)

        real_upsert = licence_counts._upsert
        calls = []

        def dies_after_the_first_chunk(rows, *, batch):
            calls.append(batch)
            if len(calls) == 2:
                raise RuntimeError("worker killed")
            real_upsert(rows, batch=batch)

        monkeypatch.setattr(licence_counts, "UPSERT_CHUNK", 1)
        monkeypatch.setattr(licence_counts, "_upsert", dies_after_the_first_chunk)
        with pytest.raises(RuntimeError):
            license_checks_flush()
        assert _counts() == {(subscription.pk, _today()): 1}  # the first chunk only
        # Checks counted meanwhile wait in a new hash, behind the pending batch.
        license_check_count(subscription_id=subscription.pk)
        monkeypatch.setattr(licence_counts, "_upsert", real_upsert)
        # The rerun finishes the pending batch (same id) without adding its first row again.
        assert license_checks_flush() == 3
        assert _counts() == {(subscription.pk, _today()): 1, (other.pk, _today()): 2}
        assert license_checks_flush() == 1
        assert _counts() == {(subscription.pk, _today()): 2, (other.pk, _today()): 2}
        assert license_checks_flush() == 0

    def test_a_flush_that_died_before_deleting_the_batch_adds_nothing_again(
            self, subscription, monkeypatch):
        license_check_count(subscription_id=subscription.pk)
        _keep_the_pending_batch(monkeypatch)  # as if the job died before its DEL
        assert license_checks_flush() == 1
        assert license_checks_flush() == 1  # the same batch read again...
        monkeypatch.undo()
        assert _counts() == {(subscription.pk, _today()): 1}  # ...but added once
        assert license_checks_flush() == 1
        assert license_checks_flush() == 0
        assert _counts() == {(subscription.pk, _today()): 1}

    def test_a_flush_already_running_is_not_joined(self, subscription, monkeypatch):
        license_check_count(subscription_id=subscription.pk)
        monkeypatch.setattr(licence_counts, "lock_acquire", lambda key, ttl: None)
        assert license_checks_flush() == 0
        monkeypatch.undo()
        assert license_checks_flush() == 1


@pytest.mark.django_db
class TestRedisDown:
    def test_success_is_upserted_at_once(self, subscription, redis_down):
        assert _check(key=subscription.code).valid
        assert _check(key=subscription.code).valid
        assert _counts() == {(subscription.pk, _today()): 2}
        assert license_checks_flush() == 0  # nothing waits in Redis
        assert _counts() == {(subscription.pk, _today()): 2}

    def test_synchronous_upsert_does_not_hide_a_pending_batch(self, subscription, settings,
                                                               monkeypatch):
        license_check_count(subscription_id=subscription.pk)
        _keep_the_pending_batch(monkeypatch)
        assert license_checks_flush() == 1  # applied, but the batch is left pending
        monkeypatch.undo()
        when = timezone.now() + timedelta(seconds=30)
        # During an outage the check writes directly...
        licence_counts._upsert([licence_counts.CheckCount(subscription.pk, _today(), 1, when)],
                               batch="")
        assert _counts() == {(subscription.pk, _today()): 2}
        # ...and the pending batch, read again once Redis is back, is still not added twice.
        assert license_checks_flush() == 1
        row = LicenseCheckDay.objects.get()
        assert row.count == 2
        assert row.last_checked_at == when

    def test_flush_waits_while_redis_is_down(self, redis_down):
        assert license_checks_flush() == 0


def test_parse_reads_counts_and_times():
    rows = licence_counts._parse({b"n:7:2026-11-30": b"4", b"t:7:2026-11-30": b"1795000000",
                                  b"n:8:2026-11-29": b"1"})
    assert [(r.subscription_id, r.day, r.count) for r in rows] == [
        (7, date(2026, 11, 30), 4), (8, date(2026, 11, 29), 1)]
    assert rows[0].last_checked_at == datetime.fromtimestamp(1795000000, tz=dt_timezone.utc)
