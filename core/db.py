"""Database helpers for invariants that a row lock alone cannot hold."""

from __future__ import annotations

import hashlib

from django.db import connection


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
