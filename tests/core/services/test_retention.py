"""Journal retention: the daily job deletes entries past their journal's retention, in chunks,
and keeps entries still waiting for their webhook."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.models import Schedule

from config.behaviour import JournalSpec
from core.models import LogEntry, WebhookOutbox
from core.services.retention import journal_prune
from core.tasks import prune_journals

NOW = timezone.now()


@pytest.fixture(autouse=True)
def _retention(settings):
    settings.ZSPB = replace(settings.ZSPB, journals={
        "user": JournalSpec(retention_days=10),
        "moderation": JournalSpec(retention_days=30),
        "error": JournalSpec(retention_days=None),
    })


def _entries(category: str, age_days: float, count: int = 1) -> list[LogEntry]:
    return LogEntry.objects.bulk_create([
        LogEntry(category=category, action="test.entry",
                 created_at=NOW - timedelta(days=age_days)) for _ in range(count)])


def _left(category: str) -> int:
    return LogEntry.objects.filter(category=category, action="test.entry").count()


@pytest.mark.django_db
class TestJournalPrune:
    def test_each_journal_keeps_its_own_retention(self):
        _entries("user", 10.01, 2)
        _entries("user", 9.99, 3)
        _entries("moderation", 30.01, 4)
        _entries("moderation", 11)  # past the user journal's retention, not its own
        _entries("error", 3650, 2)  # null: kept for ever
        assert journal_prune(now=NOW) == {"user": 2, "moderation": 4, "error": 0}
        assert (_left("user"), _left("moderation"), _left("error")) == (3, 1, 2)

    def test_second_run_deletes_nothing(self):
        _entries("user", 20, 3)
        _entries("user", 1)
        assert journal_prune(now=NOW)["user"] == 3
        assert journal_prune(now=NOW) == {"user": 0, "moderation": 0, "error": 0}
        assert _left("user") == 1

    @pytest.mark.parametrize(("expired", "deletes"), [(5, 2), (6, 3), (7, 3), (2, 1)])
    def test_deletes_in_bounded_chunks(self, expired, deletes):
        _entries("user", 20, expired)
        _entries("user", 1, 2)
        with CaptureQueriesContext(connection) as ctx:
            result = journal_prune(now=NOW, chunk=3)
        statements = [q["sql"] for q in ctx.captured_queries
                      if "core_logentry" in q["sql"] and "DELETE" in q["sql"]]
        # A full chunk asks again; a short one ends (six rows: 3, 3, then 0).
        assert statements and all("LIMIT 3" in sql for sql in statements)
        user_deletes = len(statements) - 1  # the moderation journal's one empty chunk
        assert (result["user"], user_deletes) == (expired, deletes)
        assert _left("user") == 2

    def test_entry_waiting_for_its_webhook_is_kept_until_posted(self):
        waiting, posted = _entries("user", 20, 2)
        outbox = WebhookOutbox.objects.create(entry=waiting, journal="user")
        assert journal_prune(now=NOW)["user"] == 1
        assert list(LogEntry.objects.filter(action="test.entry")) == [waiting]
        assert not LogEntry.objects.filter(pk=posted.pk).exists()
        outbox.delete()  # delivered
        assert journal_prune(now=NOW)["user"] == 1
        assert _left("user") == 0

    def test_task_prunes_with_the_configured_retention(self):
        _entries("user", 11)
        assert prune_journals() == {"user": 1, "moderation": 0, "error": 0}


@pytest.mark.django_db
def test_sync_schedules_registers_both_jobs():
    call_command("sync_schedules", stdout=StringIO())
    jobs = {s.name: (s.func, s.minutes) for s in Schedule.objects.filter(name__startswith="zspb:")}
    assert jobs["zspb:prune-journals"] == ("core.tasks.prune_journals", 1440)
    assert jobs["zspb:licence-check-counts"] == ("core.tasks.flush_license_check_counts", 1)
