"""The role-sync outbox: every change to a member's wanted roles leaves a RoleSyncRequest row.

A row is written in the caller's transaction and coalesced per user; after commit a drain is
queued (drain.py), so the change reaches Discord within seconds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django_q.tasks import async_task

from core.discord.rest import discord_enabled
from core.models import RoleSyncRequest

REASON_MAX = 64
UNLINK_PREFIX = "unlink:"

KEY_PREFIX = "zspb:rolesync"
ENQUEUED_KEY = f"{KEY_PREFIX}:drain-enqueued"
DRAIN_TASK = "core.tasks.rolesync_drain"


def unlinked_ids(reason: str) -> list[int]:
    """Old Discord ids carried by an "unlink:<id>[,<id>...]" reason."""
    if not reason.startswith(UNLINK_PREFIX):
        return []
    ids: list[int] = []
    for part in reason[len(UNLINK_PREFIX):].split(","):
        if part.isdigit() and int(part) not in ids:
            ids.append(int(part))
    return ids


def _merged_reason(old: str, new: str) -> str:
    """The reason of a coalesced row. An unlink reason is the only record of the old Discord
    id that must lose its roles, so it survives later requests; two unlinks are merged (as
    many ids as fit; the reconcile's orphan scan catches any that do not)."""
    old_ids = unlinked_ids(old)
    if not old_ids:
        return new[:REASON_MAX]
    ids = old_ids + [i for i in unlinked_ids(new) if i not in old_ids]
    while len(ids) > 1 and len(UNLINK_PREFIX + ",".join(map(str, ids))) > REASON_MAX:
        ids.pop()
    return UNLINK_PREFIX + ",".join(map(str, ids))


def role_sync_request(*, user_id: int, reason: str) -> None:
    """Queue a role sync for the user, coalescing with any pending request.

    Joins the caller's transaction, so the request commits (or rolls back) with the change
    that caused it. A new request is due at once: whatever held the old one back may be
    over. After commit a drain is queued, so the change reaches Discord within seconds.
    """
    now = timezone.now()
    reason = reason[:REASON_MAX]
    if reason.startswith(UNLINK_PREFIX):
        _request_unlink(user_id=user_id, reason=reason, now=now)
    else:
        _upsert_keeping_unlink(user_id=user_id, reason=reason, now=now)
    drain_soon()


# Names as in core/models/sync.py and migration 0003; the tests exercise it on both databases.
_UPSERT_SQL = (
    "INSERT INTO core_rolesyncrequest "
    "(user_id, reason, requested_at, not_before, attempts, last_error) "
    "VALUES (%s, %s, %s, %s, 0, '') "
    "ON CONFLICT (user_id) DO UPDATE SET "
    "reason = CASE WHEN core_rolesyncrequest.reason LIKE %s "
    "THEN core_rolesyncrequest.reason ELSE excluded.reason END, "
    "requested_at = excluded.requested_at, not_before = excluded.not_before"
)


def _upsert_keeping_unlink(*, user_id: int, reason: str, now: datetime) -> None:
    """One INSERT ... ON CONFLICT (user) DO UPDATE that keeps a pending unlink reason.

    A single statement, as on every hot path (redeem, ban, login): concurrent callers can
    neither fail on the unique constraint nor create a second row. Raw SQL because the ORM's
    upsert cannot keep the old value conditionally; PostgreSQL and SQLite share the syntax.
    """
    moment = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT_SQL, [user_id, reason, moment, moment, f"{UNLINK_PREFIX}%"])


def _request_unlink(*, user_id: int, reason: str, now: datetime) -> None:
    """Unlinks are rare: lock the row and merge the old Discord ids in Python."""
    with transaction.atomic():
        row = RoleSyncRequest.objects.select_for_update().filter(user_id=user_id).first()
        if row is not None:
            row.reason = _merged_reason(row.reason, reason)
            row.requested_at = row.not_before = now
            row.save(update_fields=["reason", "requested_at", "not_before"])
            return
        RoleSyncRequest.objects.bulk_create(
            [RoleSyncRequest(user_id=user_id, reason=reason, requested_at=now,
                             not_before=now)],
            update_conflicts=True,
            unique_fields=["user"],
            update_fields=["reason", "requested_at", "not_before"],
        )


def request_many(*, user_ids: list[int], reason: str, now: datetime) -> None:
    """Queue many users at once, leaving existing rows' reasons alone (a pending unlink
    must survive) but making them due now."""
    RoleSyncRequest.objects.bulk_create(
        [RoleSyncRequest(user_id=uid, reason=reason, requested_at=now, not_before=now)
         for uid in user_ids],
        ignore_conflicts=True,
    )
    RoleSyncRequest.objects.filter(user_id__in=user_ids, not_before__gt=now).update(
        not_before=now
    )


def drain_soon() -> None:
    """Queue a drain once the current transaction commits (nothing while Discord is off)."""
    if discord_enabled():
        # robust: a broker failure is logged; the row is safe and the schedule drains it.
        transaction.on_commit(enqueue_drain, robust=True)


def enqueue_drain() -> None:
    # A burst of requests needs one drain, not one each. A finishing drain clears the mark
    # before its last look for due rows, so a request committed meanwhile is not stranded.
    if cache.add(ENQUEUED_KEY, 1, timeout=30):
        async_task(DRAIN_TASK, task_name="zspb:rolesync-drain-soon")


def request_selected(*, rows: QuerySet[Any], reason: str, now: datetime) -> int:
    """Queue the user of each of `rows` (any model with a user_id), in one INSERT ... SELECT: a
    minute's expiries (100,000 at scale) cost one statement, not a round trip per member.
    As request_many, existing rows keep their reason and only become due now. Returns the
    rows written (new, or made due); members already due are left as they are."""
    sql, params = rows.order_by().values("user_id").query.sql_with_params()
    moment = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        # The subquery is the ORM's own SQL, its values passed as parameters. "WHERE true"
        # lets SQLite tell the SELECT's end from the upsert clause.
        statement = (
            "INSERT INTO core_rolesyncrequest "  # noqa: S608  # the ORM's SQL, see above
            "(user_id, reason, requested_at, not_before, attempts, last_error) "
            f"SELECT DISTINCT selected.user_id, %s, %s, %s, 0, '' FROM ({sql}) selected "
            "WHERE true ON CONFLICT (user_id) DO UPDATE SET not_before = excluded.not_before "
            "WHERE core_rolesyncrequest.not_before > excluded.not_before")
        cursor.execute(statement, [reason[:REASON_MAX], moment, moment, *params])
        return max(int(cursor.rowcount), 0)
