"""Every row of a large changelist is reachable by paging, whether its count is exact, capped
(SQLite: EXACT_COUNT_LIMIT) or a planner estimate (PostgreSQL) that is off either way.

The limit is lowered instead of inserting 10,000 rows; the logic is the same.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.paginator import EmptyPage
from django.db import connection
from django.utils import timezone

from core.models import LicenseKey, LogEntry, Product, User
from staff.changelist import EstimatedCountPaginator
from staff.keys import LicenseKeyAdmin

LIMIT = 50
ROWS = 123


@pytest.fixture
def low_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("staff.changelist.EXACT_COUNT_LIMIT", LIMIT)


def seed_log(actor: User) -> list[int]:
    LogEntry.objects.all().delete()  # the roles fixture journals its sync
    now = timezone.now()
    LogEntry.objects.bulk_create([
        LogEntry(category="moderation", action="probe", actor=actor, data={"i": i},
                 created_at=now - timedelta(seconds=i)) for i in range(ROWS)])
    return list(LogEntry.objects.order_by("id").values_list("id", flat=True))


def walk(paginator: EstimatedCountPaginator) -> list[int]:
    """Follow the paginator from page 1 as the page links would, as long as it says there
    is a next page."""
    seen: list[int] = []
    number = 1
    while True:
        page = paginator.page(number)
        seen.extend(row.pk for row in page.object_list)
        if not page.has_next():
            return seen
        number += 1
        assert number < 100, "runaway paging"


@pytest.mark.django_db
@pytest.mark.parametrize("filtered", [False, True])
def test_every_row_is_reachable_past_the_capped_count(low_limit: None, moderator: User,
                                                      filtered: bool) -> None:
    ids = seed_log(moderator)
    queryset = LogEntry.objects.order_by("id")
    if filtered:  # PostgreSQL: the planner's estimate instead of reltuples
        queryset = queryset.filter(category="moderation")
    paginator = EstimatedCountPaginator(queryset, 10)
    assert paginator.count >= LIMIT or connection.vendor == "postgresql"
    assert walk(paginator) == ids
    assert paginator.count == ROWS  # the true end is known once reached


@pytest.mark.django_db
def test_a_page_past_the_estimate_is_served_not_refused(low_limit: None,
                                                        moderator: User) -> None:
    ids = seed_log(moderator)
    paginator = EstimatedCountPaginator(LogEntry.objects.order_by("id"), 10)
    if connection.vendor != "postgresql":
        assert paginator.count == LIMIT  # capped: five pages known
    page = paginator.page(9)
    assert [row.pk for row in page.object_list] == ids[80:90]
    assert page.has_next() and paginator.num_pages >= 10
    last = paginator.page(13)
    assert [row.pk for row in last.object_list] == ids[120:]
    assert not last.has_next() and last.end_index() == ROWS
    with pytest.raises(EmptyPage):
        paginator.page(0)


@pytest.mark.django_db
def test_exact_counts_keep_ordinary_paging(low_limit: None, moderator: User) -> None:
    LogEntry.objects.all().delete()
    LogEntry.objects.bulk_create([LogEntry(category="user", action="x") for _ in range(25)])
    paginator = EstimatedCountPaginator(LogEntry.objects.order_by("id"), 10)
    assert paginator.count == 25 and paginator.num_pages == 3
    with pytest.raises(EmptyPage):
        paginator.page(4)


@pytest.mark.django_db
def test_key_changelist_pages_past_the_cap(low_limit: None, staff_client: Any, admin: User,
                                           product: Product,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """On SQLite the list said "10000 results" and every later page bounced to ?e=1."""
    monkeypatch.setattr(LicenseKeyAdmin, "list_per_page", 20)
    LicenseKey.objects.bulk_create([
        LicenseKey(code_digest=f"{i:064x}", code="ZSPB-AAAAA-BBBBB-CCCCC-DDDDD",
                   product=product, duration=timedelta(days=1), batch="0" * 32)
        for i in range(ROWS)])
    client = staff_client("admin")
    oldest = list(LicenseKey.objects.order_by("id").values_list("id", flat=True))[:3]
    response = client.get("/admin/core/licensekey/", {"p": 7})  # ordered by -id: the oldest
    assert response.status_code == 200
    assert [key.pk for key in response.context["cl"].result_list] == oldest[::-1]
