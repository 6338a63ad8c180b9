"""Far pages of an estimated changelist are read in two steps (keys, then rows): same rows."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.models import LogEntry
from staff.changelist import EstimatedCountPaginator


@pytest.mark.django_db
def test_a_far_page_has_the_rows_of_a_plain_offset(
    moderator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    LogEntry.objects.bulk_create([
        LogEntry(category="moderation", action=f"probe.{i % 3}", actor=moderator,
                 actor_name=moderator.username, data={"i": i}) for i in range(60)])
    monkeypatch.setattr("staff.changelist.EXACT_COUNT_LIMIT", 5)
    monkeypatch.setattr("staff.changelist.DEFERRED_JOIN_OFFSET", 20)
    queryset = (LogEntry.objects.filter(action__startswith="probe.").select_related("actor")
                .order_by("-created_at", "-id"))
    expected = list(queryset.values_list("pk", flat=True))
    for number in (2, 3, 6):  # offsets 10 (one query), 20 and 50 (two)
        paginator = EstimatedCountPaginator(queryset, 10)
        assert paginator.count >= 5
        with CaptureQueriesContext(connection) as captured:
            page = paginator.page(number)
        assert [row.pk for row in page] == expected[(number - 1) * 10:number * 10]
        assert len(captured) == (1 if number == 2 else 2)
        assert page.has_next() == (number < 6)
    assert page[0].actor == moderator  # the joined row came along
