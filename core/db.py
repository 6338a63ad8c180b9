"""Database helpers: invariants that a row lock alone cannot hold, and values read by SQL."""

from __future__ import annotations

import hashlib
from datetime import datetime
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import connection
from django.utils import timezone


def advisory_xact_lock(name: str) -> None:
    """Serialise transactions on an arbitrary name until the current transaction ends.

    PostgreSQL only; SQLite already serialises writers, so there it does nothing. Used where no
    row exists yet to lock (e.g. "one registration per IP per window").
    """
    if connection.vendor != "postgresql":
        return
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def aware_datetime(value: datetime) -> datetime:
    """A datetime column read by a cursor (a statement written in SQL), as the ORM would give
    it: aware. PostgreSQL returns aware values already, SQLite naive UTC."""
    if settings.USE_TZ and timezone.is_naive(value):
        return timezone.make_aware(value, dt_timezone.utc)
    return value
