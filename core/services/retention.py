"""Journal retention: entries past their journal's retention_days (config.yaml) are deleted by
the daily job zspb:prune-journals, like the login logs of core.services.lockouts."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from core.models import LogEntry

# Rows per DELETE: each statement is its own short transaction, so the journal is never locked
# for long and neither PostgreSQL nor this process holds more than one chunk.
PRUNE_CHUNK = 5000

_DELETE_CHUNK = """
    DELETE FROM core_logentry WHERE id IN (
        SELECT e.id FROM core_logentry e
        WHERE e.category = %s AND e.created_at < %s
          AND NOT EXISTS (SELECT 1 FROM core_webhookoutbox o WHERE o.entry_id = e.id)
        LIMIT %s)
"""


def journal_prune(*, now: datetime | None = None, chunk: int = PRUNE_CHUNK) -> dict[str, int]:
    """Delete the entries older than their journal's retention; how many, per journal.

    An entry still waiting in the webhook outbox is kept until it has been posted (the next
    run deletes it). Safe to run twice or concurrently: a second run finds nothing left.
    """
    now = now or timezone.now()
    deleted: dict[str, int] = {}
    for category, spec in settings.ZSPB.journals.items():
        deleted[category] = 0
        if spec.retention_days is None or category not in LogEntry.Category.values:
            continue
        cutoff = now - timedelta(days=spec.retention_days)
        while True:
            with connection.cursor() as cursor:
                cursor.execute(_DELETE_CHUNK, [category, cutoff, chunk])
                count = cursor.rowcount
            deleted[category] += count
            if count < chunk:
                break
    return deleted
