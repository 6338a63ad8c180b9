"""Changelists over large tables: the number of queries does not grow with the rows, and no
query counts a whole table.

Rows are seeded with bulk_create and one precomputed ciphertext/fake digests, so 50,000 keys
take seconds instead of the minutes real generation (Fernet per key) would.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.models import LicenseKey, LogEntry, Product, Subscription, User
from staff.changelist import EXACT_COUNT_LIMIT, EstimatedCountPaginator
from tests.factories import ProductFactory

KEYS = "/admin/core/licensekey/"
JOURNAL = "/admin/core/moderationentry/"
# ZSPB_SCALE_ROWS=1000000 repeats the checks at the full scale (minutes to seed).
LARGE = int(os.environ.get("ZSPB_SCALE_ROWS", "50000"))
COUNT_RE = re.compile(r"\bCOUNT\(", re.IGNORECASE)
# Session, user, 2FA device, filters' choices, count, page: a constant, whatever the rows.
QUERY_CEILING = 12


def fast_encryption(monkeypatch: pytest.MonkeyPatch, model: type[Any], field: str,
                    plain: str) -> None:
    """Every row of `field` gets the same ciphertext, computed once."""
    model_field = model._meta.get_field(field)
    cipher = model_field.get_db_prep_save(plain, connection)
    monkeypatch.setattr(model_field, "get_db_prep_save", lambda value, connection: cipher)


SEED_CHUNK = 5000  # rows built and inserted at a time: a million objects would not fit


def seed_keys(start: int, stop: int, *, products: list[Product], creators: list[User],
              redeemer: User, batches: list[uuid.UUID]) -> None:
    now = timezone.now()
    for chunk in range(start, stop, SEED_CHUNK):
        rows = []
        for i in range(chunk, min(chunk + SEED_CHUNK, stop)):
            redeemed = i % 10 == 0
            rows.append(LicenseKey(
                code_digest=f"{i:064x}", code="", product=products[i % len(products)],
                duration=timedelta(days=30), batch=batches[i % len(batches)],
                status="redeemed" if redeemed else "free",
                redeemed_by=redeemer if redeemed else None,
                redeemed_at=now if redeemed else None,
                created_by=creators[i % len(creators)], created_at=now - timedelta(seconds=i)))
        LicenseKey.objects.bulk_create(rows)


def seed_log(start: int, stop: int, *, actors: list[User]) -> None:
    now = timezone.now()
    for chunk in range(start, stop, SEED_CHUNK):
        LogEntry.objects.bulk_create([
            LogEntry(category="moderation" if i % 2 else "user", action=f"probe.{i % 7}",
                     actor=actors[i % len(actors)], actor_name=actors[i % len(actors)].username,
                     target=actors[(i + 1) % len(actors)], data={"i": i}, ip="",
                     created_at=now - timedelta(minutes=i))
            for i in range(chunk, min(chunk + SEED_CHUNK, stop))
        ])


def analyze(table: str) -> None:
    # Inside the test's transaction ANALYZE counts this transaction's own rows, so reltuples
    # reflects the seeded table as it would in production after autovacuum.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {table}")


@pytest.fixture
def reset_estimates() -> Any:
    """ANALYZE writes pg_class in place: the rollback would not undo the estimate, and later
    tests would see 50,000 phantom rows. Delete the rows (still in the transaction) and
    ANALYZE again, which counts rows deleted by this transaction as gone."""
    yield
    if connection.vendor == "postgresql":
        for model in (LicenseKey, LogEntry):
            model.objects.all()._raw_delete(connection.alias)
            analyze(model._meta.db_table)


def profile(client: Any, urls: list[str]) -> dict[str, tuple[int, list[str], float]]:
    """Per URL: number of queries, the SQL of those that count, and seconds taken."""
    result = {}
    for url in urls:
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url)
            elapsed = time.perf_counter() - started
        assert response.status_code == 200, url
        counts = [q["sql"] for q in captured.captured_queries if COUNT_RE.search(q["sql"])]
        result[url] = (len(captured.captured_queries), counts, elapsed)
    return result


def assert_counts_bounded(counts: list[str]) -> None:
    """Every COUNT is over a LIMITed subquery: none scans the whole table."""
    for sql in counts:
        assert re.search(rf"LIMIT {EXACT_COUNT_LIMIT}\b", sql), sql


@pytest.fixture
def key_world(roles: Any, moderator: Any, admin: Any, member: Any,
              monkeypatch: pytest.MonkeyPatch, reset_estimates: None) -> Callable[[int], None]:
    fast_encryption(monkeypatch, LicenseKey, "code", "ZSPB-AAAAA-BBBBB-CCCCC-DDDDD")
    products = [ProductFactory.create() for _ in range(3)]
    batches = [uuid.uuid4() for _ in range(5)]
    for product in products:
        Subscription.objects.create(user=member, product=product,
                                    expires_at=timezone.now() + timedelta(days=30))
    seeded = [0]

    def grow(total: int) -> None:
        seed_keys(seeded[0], total, products=products, creators=[moderator, admin],
                  redeemer=member, batches=batches)
        seeded[0] = total
        analyze("core_licensekey")

    grow.batches = batches  # type: ignore[attr-defined]
    grow.products = products  # type: ignore[attr-defined]
    return grow


@pytest.mark.slow
@pytest.mark.django_db
def test_key_changelist_queries_do_not_grow_with_the_table(
    key_world: Any, staff_client: Any, moderator: Any
) -> None:
    client = staff_client("admin", username="scale_admin")
    batch, product = key_world.batches[0], key_world.products[0]
    urls = [
        KEYS,
        f"{KEYS}?p=3",
        f"{KEYS}?status__exact=free",
        f"{KEYS}?product__id__exact={product.pk}",
        f"{KEYS}?batch={batch}",
        f"{KEYS}?created_by={moderator.username}",
        f"{KEYS}?q=ZSPB-AAAAA-BBBBB-CCCCC-DDDDD",
        f"{KEYS}?status__exact=redeemed&product__id__exact={product.pk}",
    ]
    key_world(300)
    small = profile(client, urls)
    key_world(LARGE)
    assert LicenseKey.objects.count() == LARGE
    large = profile(client, urls)
    for url in urls:
        # Equal up to the one query by which the way of counting may differ (an exact capped
        # count, pg_class's estimate, or the capped count plus the planner's estimate).
        assert abs(large[url][0] - small[url][0]) <= 1, (url, small[url], large[url])
        assert large[url][0] <= QUERY_CEILING, (url, large[url][0])
        assert_counts_bounded(large[url][1])
        assert large[url][2] < 5, (url, large[url][2])  # generous: CI machines vary
    if connection.vendor == "postgresql":
        assert large[KEYS][1] == []  # unfiltered: pg_class.reltuples, no COUNT at all


@pytest.mark.slow
@pytest.mark.django_db
def test_journal_changelist_queries_do_not_grow_with_the_table(
    roles: Any, staff_client: Any, moderator: Any, admin: Any, member: Any,
    monkeypatch: pytest.MonkeyPatch, reset_estimates: None,
) -> None:
    fast_encryption(monkeypatch, LogEntry, "ip", "")
    client = staff_client("admin", username="scale_admin")
    actors = [moderator, admin, member]
    urls = [
        JOURNAL,
        f"{JOURNAL}?p=2",
        f"{JOURNAL}?actor={moderator.username}",
        f"{JOURNAL}?target={member.pk}",
        f"{JOURNAL}?action=probe.3",
        f"{JOURNAL}?action=probe.*",
        f"{JOURNAL}?created_at_from={timezone.localdate().isoformat()}",
    ]
    seed_log(0, 300, actors=actors)
    small = profile(client, urls)
    seed_log(300, LARGE, actors=actors)
    analyze("core_logentry")
    large = profile(client, urls)
    for url in urls:
        assert abs(large[url][0] - small[url][0]) <= 1, (url, small[url], large[url])
        assert large[url][0] <= QUERY_CEILING, (url, large[url][0])
        assert_counts_bounded(large[url][1])
        assert large[url][2] < 5, (url, large[url][2])


@pytest.mark.django_db
def test_paginator_counts_exactly_below_the_limit_and_caps_above(
    roles: Any, moderator: Any, monkeypatch: pytest.MonkeyPatch, reset_estimates: None
) -> None:
    monkeypatch.setattr("staff.changelist.EXACT_COUNT_LIMIT", 50)
    fast_encryption(monkeypatch, LogEntry, "ip", "")
    LogEntry.objects.all().delete()
    seed_log(0, 30, actors=[moderator])
    analyze("core_logentry")
    assert EstimatedCountPaginator(LogEntry.objects.all(), 10).count == 30
    seed_log(30, 120, actors=[moderator])
    analyze("core_logentry")
    if connection.vendor == "postgresql":
        assert EstimatedCountPaginator(LogEntry.objects.all(), 10).count == 120  # reltuples
    filtered = LogEntry.objects.filter(category="moderation")
    counted = EstimatedCountPaginator(filtered, 10).count
    if connection.vendor == "postgresql":
        assert counted >= 50  # the planner's estimate, never below the exact part
    else:
        assert counted == 50
    assert EstimatedCountPaginator([1, 2, 3], 2).count == 3
