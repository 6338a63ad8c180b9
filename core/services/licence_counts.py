"""Successful licence checks, counted per subscription and day instead of journaled one by one.

The check runs for every paying member's loader, many times a second; one journal row per
success made storage grow with traffic and cost a synchronous INSERT per check. A success now
costs one Redis command (HINCRBY and HSET in one script, its answer not waited for) on the
hash COUNTS_KEY, and the job zspb:licence-check-counts adds the counts to LicenseCheckDay
every minute. Refusals are not counted here: they stay journaled one by one
(core.services.licensing).

While Redis is unreachable (core.cache.ResilientRedisCache is degraded), or when the cache is
not Redis at all (a local development run), the check upserts its row synchronously instead,
so no success goes uncounted.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from datetime import timezone as dt_timezone
from typing import Any

from django.core.cache import caches
from django.db import connection
from django.utils import timezone
from redis.exceptions import ResponseError

from core.cache import UNREACHABLE, ResilientRedisCache
from core.cache_split import WriteBehind
from core.services.tasklock import lock_acquire, lock_release

# Both keys go through the cache's key prefix and version, like every other cache key.
COUNTS_KEY = "licence-checks"
FLUSHING_KEY = "licence-checks:flushing"
BATCH_FIELD = "batch"
FLUSH_LOCK = "zspb:lock:licence-check-counts"
FLUSH_LOCK_TTL = 300
UPSERT_CHUNK = 1000


@dataclass(frozen=True)
class CheckCount:
    subscription_id: int
    day: date
    count: int
    last_checked_at: datetime


def _day(at: datetime) -> date:
    return timezone.localdate(at)


def license_check_count(*, subscription_id: int, now: datetime | None = None) -> None:
    """Count one successful licence check of the subscription, on the day of `now`."""
    now = now or timezone.now()
    row = CheckCount(subscription_id=subscription_id, day=_day(now), count=1,
                     last_checked_at=now)
    backend = caches["default"]
    if not isinstance(backend, ResilientRedisCache):
        _upsert([row], batch="")
        return
    field = f"{subscription_id}:{row.day.isoformat()}"
    # Sent without waiting for Redis' answer, which this thread reads before its next count
    # (core.cache_split.WriteBehind): the check answers one round trip sooner. An answer that
    # never comes, or Redis known to be down, upserts the row synchronously instead: a check
    # may then be counted twice, never lost.
    _counts_behind.send(
        backend,
        ("EVAL", _COUNT_SCRIPT, 1, backend.make_and_validate_key(COUNTS_KEY),
         f"n:{field}", f"t:{field}", str(int(now.timestamp()))),
        on_lost=lambda: _upsert([row], batch=""),
    )


_counts_behind = WriteBehind()
# One command, so one answer to read back (a MULTI would leave four).
_COUNT_SCRIPT = """
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
return 1
"""


def license_checks_flush() -> int:
    """Move the counts out of Redis into LicenseCheckDay; returns how many checks the batch it
    flushed holds (a batch finished again after a failed run is counted in that figure again,
    though never added again).

    Exactly once, whatever dies where, with one flush at a time (FLUSH_LOCK):
    1. While no batch is pending, RENAMENX moves the counting hash to FLUSHING_KEY in one atomic
       step; checks counted after it start a new hash, so none is lost or read twice.
    2. The pending batch gets a random id (HSETNX, so a batch keeps the id it was first given).
    3. Its rows are upserted with `count = count + EXCLUDED.count` only where the row's
       `flush_batch` is not this batch's id, and the row is stamped with it, in the same
       statement: a batch applied before the job died (in full or in part) is not added again.
    4. Only then is FLUSHING_KEY deleted. A run that died before this finds the batch still
       pending and goes through 2-4 again, adding only what was not added yet; no new batch
       is renamed while one is pending.
    The synchronous upsert of an outage leaves `flush_batch` as it is, so it cannot make a
    pending batch look unapplied. Counts wait in Redis while PostgreSQL or Redis is down and
    are flushed by the next run that reaches both; Redis must not evict keys (no allkeys-*
    maxmemory policy), or counts not flushed yet are lost with the hash.
    """
    backend = caches["default"]
    if not isinstance(backend, ResilientRedisCache):
        return 0  # no Redis: every check was upserted synchronously
    token = lock_acquire(FLUSH_LOCK, ttl=FLUSH_LOCK_TTL)
    if token is None:
        return 0  # another run is flushing
    try:
        return _flush(backend)
    except UNREACHABLE:
        return 0  # Redis is down: the counts wait there for the next run
    finally:
        lock_release(FLUSH_LOCK, token)


def _flush(backend: ResilientRedisCache) -> int:
    counts_key = backend.make_and_validate_key(COUNTS_KEY)
    flushing_key = backend.make_and_validate_key(FLUSHING_KEY)
    client = backend.redis_client()
    if not client.exists(flushing_key):
        try:
            client.renamenx(counts_key, flushing_key)
        except ResponseError:  # no counts since the last flush
            return 0
    client.hsetnx(flushing_key, BATCH_FIELD, secrets.token_hex(16))
    raw: dict[bytes, bytes] = client.hgetall(flushing_key)
    batch = raw.pop(BATCH_FIELD.encode(), b"").decode()
    rows = _parse(raw)
    for start in range(0, len(rows), UPSERT_CHUNK):
        _upsert(rows[start:start + UPSERT_CHUNK], batch=batch)
    client.delete(flushing_key)
    return sum(row.count for row in rows)


def _parse(raw: dict[bytes, bytes]) -> list[CheckCount]:
    counts: dict[str, int] = {}
    times: dict[str, int] = {}
    for name, value in raw.items():
        kind, _, field = name.decode().partition(":")
        if kind == "n":
            counts[field] = int(value)
        elif kind == "t":
            times[field] = int(value)
    rows = []
    for field, count in sorted(counts.items()):
        subscription_id, _, day = field.partition(":")
        seen = times.get(field)
        rows.append(CheckCount(
            subscription_id=int(subscription_id), day=date.fromisoformat(day), count=count,
            last_checked_at=(datetime.fromtimestamp(seen, tz=dt_timezone.utc) if seen
                             else timezone.now())))
    return rows


# Arrays, so one constant statement takes any number of rows. An empty batch is the synchronous
# path: it always adds and never moves the stamp.
_UPSERT = """
    INSERT INTO core_licensecheckday (subscription_id, day, count, last_checked_at, flush_batch)
    SELECT v.sid, v.day, v.n, v.t, b.batch
    FROM (SELECT %s::varchar AS batch) AS b,
         unnest(%s::bigint[], %s::date[], %s::bigint[], %s::timestamptz[]) AS v (sid, day, n, t)
    WHERE EXISTS (SELECT 1 FROM core_subscription s WHERE s.id = v.sid)
    ON CONFLICT (subscription_id, day) DO UPDATE SET
        count = core_licensecheckday.count + EXCLUDED.count,
        last_checked_at = GREATEST(core_licensecheckday.last_checked_at,
                                   EXCLUDED.last_checked_at),
        flush_batch = CASE WHEN EXCLUDED.flush_batch = '' THEN core_licensecheckday.flush_batch
                           ELSE EXCLUDED.flush_batch END
    WHERE EXCLUDED.flush_batch = '' OR core_licensecheckday.flush_batch <> EXCLUDED.flush_batch
"""


def _upsert(rows: Sequence[CheckCount], *, batch: str) -> None:
    """Add the counts; rows of subscriptions deleted meanwhile are dropped (the EXISTS)."""
    if not rows:
        return
    params: list[Any] = [batch, [row.subscription_id for row in rows], [row.day for row in rows],
              [row.count for row in rows], [row.last_checked_at for row in rows]]
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT, params)

