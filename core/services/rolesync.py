"""The role-sync outbox and its drain: Discord roles converge to the site's wanted roles.

Every change that affects a member's wanted roles writes a RoleSyncRequest row in its own
transaction (role_sync_request). The drain (role_sync_drain, a django-q2 task queued on commit
and every minute) reads each due row, compares the member's roles in Discord with the wanted
set and applies only the difference on managed roles, one PUT/DELETE per role. A periodic
reconcile queues every linked member and strips managed roles from guild members no account
is linked to, so nothing is lost if Discord, the worker or the bot was down.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection, models, transaction
from django.utils import timezone
from django_q.tasks import async_task

from core.discord.rest import (
    UNKNOWN_MEMBER,
    UNKNOWN_ROLE,
    DiscordAuthError,
    DiscordBadRequest,
    DiscordClient,
    DiscordError,
    DiscordNotFound,
    DiscordRateLimited,
    DiscordUnavailable,
    discord_client,
    discord_enabled,
)
from core.models import RoleSyncRequest, Subscription, User
from core.selectors.discord import managed_role_ids, member_wanted_roles
from core.services.logs import Category, log_event

log = logging.getLogger("zspb.rolesync")

REASON_MAX = 64
UNLINK_PREFIX = "unlink:"

# A drain runs inside one django-q2 task (timeout 60 s): stop taking rows after this long.
DRAIN_TIME_BUDGET = 45.0
DRAIN_LIMIT = 500
CLAIM_BATCH = 25
# A claimed row is invisible to other drains this long; a crashed drain's rows come back after.
LEASE = timedelta(minutes=2)
# Failed calls (5xx, timeouts): 30 s, 1 min, 2 min... at most an hour between attempts.
RETRY_BASE = timedelta(seconds=30)
RETRY_MAX = timedelta(hours=1)
# Not in the guild: wait for the bot to report the join (which makes the row due again); the
# periodic reconcile re-probes anyway, in case the bot missed it.
UNKNOWN_MEMBER_WAIT = timedelta(days=30)
# 401/403: the token or the role hierarchy is wrong. Every drain stops for this long, so the
# misconfiguration costs one invalid request per period instead of one per member.
AUTH_HALT_SECONDS = 600
# One error journal entry per misconfiguration, repeated at most daily while it lasts.
ALERT_SECONDS = 86_400
# Login checks must not hold up a login for long.
LOGIN_CHECK_TIMEOUT = 1.5
# Expired subscriptions are looked up since the last run, or this far back without one.
EXPIRY_LOOKBACK = timedelta(hours=1)
RECONCILE_BATCH = 500
ORPHAN_PAGE = 1000
RECONCILE_TIME_BUDGET = 45.0

_K = "zspb:rolesync"
LOCK_KEY = f"{_K}:drain-lock"
ENQUEUED_KEY = f"{_K}:drain-enqueued"
HALT_KEY = f"{_K}:halted-until"
AUTH_ALERT_KEY = f"{_K}:alerted:auth"
EXPIRY_MARK_KEY = f"{_K}:expired-until"
# After an outage, logins skip their Discord check for a while instead of waiting on it.
OUTAGE_KEY = f"{_K}:outage"
OUTAGE_SECONDS = 60
DRAIN_TASK = "core.tasks.rolesync_drain"


# Requests ----------------------------------------------------------------------------------
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


def _request_many(*, user_ids: list[int], reason: str, now: datetime) -> None:
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
        transaction.on_commit(_enqueue_drain, robust=True)


def _enqueue_drain() -> None:
    # A burst of requests needs one drain, not one each. A finishing drain clears the mark
    # before its last look for due rows, so a request committed meanwhile is not stranded.
    if cache.add(ENQUEUED_KEY, 1, timeout=30):
        async_task(DRAIN_TASK, task_name="zspb:rolesync-drain-soon")


# Drain -------------------------------------------------------------------------------------
@dataclass
class DrainReport:
    synced: int = 0  # rows converged (deleted, or superseded by a newer request)
    pending: int = 0  # rows left for later: unknown member or a failed call
    stopped: str = ""  # why the drain ended early: disabled, busy, halted, forbidden...


def role_diff(
    *, current: frozenset[int] | set[int], wanted: set[int], managed: set[int]
) -> tuple[set[int], set[int]]:
    """(roles to add, roles to remove). Roles the site does not manage are never touched."""
    wanted = wanted & managed
    return wanted - current, (set(current) & managed) - wanted


class _UnknownMember(Exception):
    pass


def _audit(reason: str) -> str:
    return f"ZalypaSPB role sync ({reason})"


def _alert_once(*, key: str, action: str, data: dict[str, object]) -> None:
    if cache.add(key, 1, timeout=ALERT_SECONDS):
        log_event(category=Category.ERROR, action=action, data=data)


def _converge(
    client: DiscordClient, *, guild_id: int, discord_id: int, wanted: set[int],
    managed: set[int], reason: str, deadline: float,
) -> None:
    """Make one member's managed roles equal `wanted`; raises _UnknownMember if not in the guild."""
    try:
        member = client.member_get(guild_id=guild_id, user_id=discord_id, deadline=deadline)
    except DiscordNotFound as exc:
        if exc.code == UNKNOWN_MEMBER:
            raise _UnknownMember() from None
        raise
    add, remove = role_diff(current=member.roles, wanted=wanted, managed=managed)
    # Removals first: after a ban, access goes before anything else happens.
    for role_id in sorted(remove):
        _role_call(client, add=False, guild_id=guild_id, discord_id=discord_id, role_id=role_id,
                   reason=reason, deadline=deadline)
    for role_id in sorted(add):
        _role_call(client, add=True, guild_id=guild_id, discord_id=discord_id, role_id=role_id,
                   reason=reason, deadline=deadline)


def _role_call(
    client: DiscordClient, *, add: bool, guild_id: int, discord_id: int, role_id: int,
    reason: str, deadline: float,
) -> None:
    call = client.member_role_add if add else client.member_role_remove
    try:
        call(guild_id=guild_id, user_id=discord_id, role_id=role_id, reason=reason,
             deadline=deadline)
    except DiscordNotFound as exc:
        if exc.code == UNKNOWN_MEMBER:
            raise _UnknownMember() from None
        if exc.code != UNKNOWN_ROLE:
            raise
        # A role id in the site's configuration that Discord does not know: other roles can
        # still be applied; staff must fix the id (the error journal says which).
        _alert_once(key=f"{_K}:alerted:role:{role_id}", action="discord.unknown_role",
                    data={"role_id": str(role_id),
                          "hint": "No such role in the guild: fix the Discord role id of the "
                                  "site role or product that uses it."})


def _sync_row(
    client: DiscordClient, row: RoleSyncRequest, *, guild_id: int, managed: set[int],
    deadline: float,
) -> bool:
    """Converge the row's member(s); False when the linked member is not in the guild."""
    user = row.user
    reason = _audit(row.reason)
    for old_id in unlinked_ids(row.reason):
        if old_id == user.discord_id:
            continue  # linked again to the same account: converged below
        with contextlib.suppress(_UnknownMember):  # left the guild: nothing to remove
            _converge(client, guild_id=guild_id, discord_id=old_id, wanted=set(),
                      managed=managed, reason=reason, deadline=deadline)
    if user.discord_id is None:
        return True
    try:
        _converge(client, guild_id=guild_id, discord_id=user.discord_id,
                  wanted=member_wanted_roles(user=user), managed=managed, reason=reason,
                  deadline=deadline)
    except _UnknownMember:
        return False
    return True


def _unchanged(row: RoleSyncRequest) -> models.QuerySet[RoleSyncRequest]:
    # Only while nobody asked again since we read it: a newer request must not be lost.
    return RoleSyncRequest.objects.filter(pk=row.pk, requested_at=row.requested_at)


def _retry_later(row: RoleSyncRequest, *, error: str, delay: timedelta | None = None) -> None:
    attempts = row.attempts + 1
    delay = delay or min(RETRY_BASE * 2 ** (attempts - 1), RETRY_MAX)
    _unchanged(row).update(attempts=attempts, last_error=error[:500],
                           not_before=timezone.now() + delay)


def _claim(*, batch: int) -> list[RoleSyncRequest]:
    """Take up to `batch` due rows, oldest request first, each under a lease."""
    now = timezone.now()
    candidates = list(
        RoleSyncRequest.objects.filter(not_before__lte=now)
        .select_related("user__role")
        .order_by("requested_at", "id")[:batch]
    )
    claimed = []
    for row in candidates:
        # Conditional on what we read: a concurrent drain claims each row at most once.
        if RoleSyncRequest.objects.filter(
            pk=row.pk, not_before=row.not_before, requested_at=row.requested_at
        ).update(not_before=now + LEASE):
            claimed.append(row)
    return claimed


def _release(rows: list[RoleSyncRequest]) -> None:
    if rows:
        RoleSyncRequest.objects.filter(
            pk__in=[r.pk for r in rows], not_before__gt=timezone.now()
        ).update(not_before=timezone.now())


def _halted() -> bool:
    until = cache.get(HALT_KEY)
    return until is not None and until > time.time()


def _halt(exc: DiscordError) -> None:
    cache.set(HALT_KEY, time.time() + AUTH_HALT_SECONDS, timeout=AUTH_HALT_SECONDS)
    _alert_once(
        key=AUTH_ALERT_KEY,
        action="discord.role_sync_forbidden",
        data={
            "status": exc.status, "code": exc.code, "error": exc.message[:200],
            "hint": "Role sync is paused: check DISCORD_BOT_TOKEN, the bot's Manage Roles "
                    "permission and that its role is above every managed role.",
        },
    )


def _lock_ttl(time_budget: float) -> int:
    # django-q2 kills a task at its timeout, so a lock never needs to outlive it; a killed
    # drain's lock then frees itself soon after.
    task_timeout = settings.Q_CLUSTER.get("timeout", 60)
    return max(int(time_budget) + 5, task_timeout if isinstance(task_timeout, int) else 60)


def role_sync_drain(
    *,
    limit: int = DRAIN_LIMIT,
    time_budget: float = DRAIN_TIME_BUDGET,
    client: DiscordClient | None = None,
) -> DrainReport:
    """Apply due outbox rows to Discord. Safe to run concurrently and twice."""
    report = DrainReport()
    if not discord_enabled():
        report.stopped = "disabled"
        return report
    if _halted():
        report.stopped = "halted"
        return report
    token = secrets.token_hex(8)
    # One drain at a time keeps a bucket's requests in one place; leases keep it correct
    # even where the cache is per process (development).
    if not cache.add(LOCK_KEY, token, timeout=_lock_ttl(time_budget)):
        report.stopped = "busy"
        return report
    own = client is None
    client = client or discord_client()
    try:
        _drain(client, report, limit=limit, deadline=time.monotonic() + time_budget)
    finally:
        if own:
            client.close()
        if cache.get(LOCK_KEY) == token:
            cache.delete(LOCK_KEY)
        cache.delete(ENQUEUED_KEY)
    if report.stopped in ("", "limit", "budget") and RoleSyncRequest.objects.filter(
        not_before__lte=timezone.now()
    ).exists():
        # Rows that arrived while we held the lock, or a backlog larger than one run.
        _enqueue_drain()
    return report


def _drain(client: DiscordClient, report: DrainReport, *, limit: int, deadline: float) -> None:
    guild_id = settings_guild()
    managed = managed_role_ids()
    processed = 0
    while not report.stopped:
        if processed >= limit:
            report.stopped = "limit"
            break
        if time.monotonic() >= deadline:
            report.stopped = "budget"
            break
        rows = _claim(batch=min(CLAIM_BATCH, limit - processed))
        if not rows:
            break
        for index, row in enumerate(rows):
            if time.monotonic() >= deadline:
                report.stopped = "budget"
            if report.stopped:
                _release(rows[index:])
                break
            processed += 1
            _drain_one(client, row, report, guild_id=guild_id, managed=managed,
                       deadline=deadline)


def _drain_one(
    client: DiscordClient, row: RoleSyncRequest, report: DrainReport, *, guild_id: int,
    managed: set[int], deadline: float,
) -> None:
    try:
        in_guild = _sync_row(client, row, guild_id=guild_id, managed=managed,
                             deadline=deadline)
    except DiscordAuthError as exc:
        _retry_later(row, error=exc.summary(), delay=timedelta(seconds=AUTH_HALT_SECONDS))
        _halt(exc)
        report.pending += 1
        report.stopped = "forbidden"
    except DiscordUnavailable as exc:
        # Discord (or the way to it) is down: the next rows would fail the same way.
        _retry_later(row, error=exc.summary())
        cache.set(OUTAGE_KEY, 1, timeout=OUTAGE_SECONDS)
        report.pending += 1
        report.stopped = "unavailable"
    except DiscordRateLimited as exc:
        # Waiting longer than this run may: the row stays due after the limit resets.
        wait = timedelta(seconds=exc.retry_after or 1)
        _unchanged(row).update(not_before=timezone.now() + wait, last_error=exc.summary())
        report.pending += 1
        report.stopped = "rate_limited"
    except DiscordBadRequest as exc:
        _retry_later(row, error=exc.summary())
        report.pending += 1
    except Exception as exc:  # a bug for one member must not stall everyone's sync
        log.exception("role sync of user %s failed", row.user_id)
        _retry_later(row, error=f"{type(exc).__name__}: {exc}")
        report.pending += 1
    else:
        if in_guild:
            _unchanged(row).delete()
            cache.delete(AUTH_ALERT_KEY)  # working again: a new failure deserves a new entry
            report.synced += 1
        else:
            _unchanged(row).update(
                last_error=f"unknown member ({UNKNOWN_MEMBER}): waiting for them to join",
                not_before=timezone.now() + UNKNOWN_MEMBER_WAIT,
            )
            report.pending += 1


def settings_guild() -> int:
    guild_id = settings.DISCORD_GUILD_ID
    if guild_id is None:  # discord_enabled() was checked first; this is for the type checker
        raise DiscordAuthError("DISCORD_GUILD_ID is not set")
    return int(guild_id)


# Periodic ----------------------------------------------------------------------------------
def role_sync_expired(*, now: datetime | None = None, queue_drain: bool = True) -> int:
    """Queue a sync for members whose subscription ended since the last run.

    Time passing changes the wanted roles without any write, so expiry is polled. The mark
    lives in the cache; without it (first run, cache lost) an hour is looked back, and the
    six-hourly reconcile covers anything older.
    """
    now = now or timezone.now()
    if not discord_enabled():
        return 0
    since = cache.get(EXPIRY_MARK_KEY) or now - EXPIRY_LOOKBACK
    user_ids = sorted(set(
        Subscription.objects.filter(
            expires_at__gt=since, expires_at__lte=now, user__discord_id__isnull=False,
            product__discord_role_id__isnull=False,
        ).values_list("user_id", flat=True)
    ))
    for start in range(0, len(user_ids), RECONCILE_BATCH):
        with transaction.atomic():
            _request_many(user_ids=user_ids[start:start + RECONCILE_BATCH], reason="expiry",
                          now=now)
    cache.set(EXPIRY_MARK_KEY, now, timeout=None)
    if user_ids and queue_drain:
        drain_soon()
    return len(user_ids)


def roles_reconcile_all(*, batch_size: int = RECONCILE_BATCH) -> int:
    """Queue a sync for every linked member, in batches, so nothing missed stays wrong.

    Existing rows keep their reason (a pending unlink) but become due now, which also
    re-probes members who were unknown in case the bot missed their join.
    """
    if not discord_enabled():
        return 0
    last, total = 0, 0
    while True:
        ids = list(
            User.objects.filter(discord_id__isnull=False, pk__gt=last)
            .order_by("pk").values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            break
        with transaction.atomic():
            _request_many(user_ids=ids, reason="reconcile", now=timezone.now())
        total += len(ids)
        last = ids[-1]
    if total:
        drain_soon()
    return total


@dataclass
class OrphanReport:
    stripped: int = 0  # members who lost managed roles
    next_after: int | None = None  # resume the scan after this member id; None when done
    stopped: str = ""


def roles_strip_orphans(
    *, after: int = 0, time_budget: float = RECONCILE_TIME_BUDGET,
    client: DiscordClient | None = None,
) -> OrphanReport:
    """Remove managed roles from guild members no site account is linked to.

    Catches what the outbox cannot: a deleted account, an unlink that was coalesced away,
    roles handed out by hand while the bot was down. Pages through the member list (needs the
    GUILD_MEMBERS intent) and stops after `time_budget`, returning where to resume.
    """
    report = OrphanReport()
    if not discord_enabled() or _halted():
        report.stopped = "disabled" if not discord_enabled() else "halted"
        return report
    deadline = time.monotonic() + time_budget
    guild_id = settings_guild()
    managed = managed_role_ids()
    own = client is None
    client = client or discord_client()
    cursor = after
    try:
        while time.monotonic() < deadline:
            try:
                page = client.guild_members(guild_id=guild_id, after=cursor,
                                            limit=ORPHAN_PAGE, deadline=deadline)
            except DiscordAuthError as exc:
                # Listing members needs the GUILD_MEMBERS intent; role sync itself does not,
                # so this pauses only the scan.
                _alert_once(key=f"{_K}:alerted:member-list", action="discord.member_list_forbidden",
                            data={"status": exc.status, "code": exc.code,
                                  "hint": "Enable the Server Members (GUILD_MEMBERS) intent "
                                          "for the bot in the developer portal."})
                report.stopped = "forbidden"
                return report
            if not page:
                return report
            holders = [m for m in page if m.roles & managed and not m.bot]
            linked = set(User.objects.filter(
                discord_id__in=[m.user_id for m in holders]
            ).values_list("discord_id", flat=True))
            for member in holders:
                if member.user_id in linked:
                    continue
                try:
                    _converge(client, guild_id=guild_id, discord_id=member.user_id,
                              wanted=set(), managed=managed, reason=_audit("not linked"),
                              deadline=deadline)
                except _UnknownMember:
                    continue
                report.stripped += 1
            cursor = max(m.user_id for m in page)
            if len(page) < ORPHAN_PAGE:
                return report
        report.next_after = cursor
    except DiscordAuthError as exc:
        _halt(exc)
        report.stopped = "forbidden"
    except DiscordError as exc:
        log.warning("orphan role scan stopped: %s", exc.summary())
        report.stopped = type(exc).__name__
    finally:
        if own:
            client.close()
    return report


def member_strip_soon(*, discord_id: int) -> None:
    """For an account about to be deleted (its outbox row goes with it): after commit, a task
    removes the managed roles from its Discord member. The orphan scan is the fallback."""
    if discord_enabled():
        transaction.on_commit(
            lambda: async_task("core.tasks.rolesync_strip_member", discord_id), robust=True
        )


def member_roles_strip(*, discord_id: int, client: DiscordClient | None = None) -> bool:
    """Remove every managed role from a Discord member no account is linked to.

    Returns whether the member was handled (False: linked again meanwhile, or Discord off).
    """
    if not discord_enabled() or User.objects.filter(discord_id=discord_id).exists():
        return False
    own = client is None
    client = client or discord_client()
    try:
        with contextlib.suppress(_UnknownMember):
            _converge(client, guild_id=settings_guild(), discord_id=discord_id, wanted=set(),
                      managed=managed_role_ids(), reason=_audit("account deleted"),
                      deadline=time.monotonic() + RECONCILE_TIME_BUDGET)
    finally:
        if own:
            client.close()
    return True


# Login -------------------------------------------------------------------------------------
def member_roles_check(*, user: User, timeout: float = LOGIN_CHECK_TIMEOUT) -> bool:
    """At login: read the member's roles and queue a sync if they differ from the wanted set.

    Bounded by `timeout` and never raises: a login must not fail or hang because of Discord.
    Returns whether a sync was queued. When Discord cannot answer, a sync is queued anyway
    (cheap, and the drain finds out); a member not in the guild is synced when they join.
    """
    try:
        if not discord_enabled() or user.discord_id is None:
            return False
        if _halted() or cache.get(OUTAGE_KEY):
            role_sync_request(user_id=user.pk, reason="login")
            return True
        deadline = time.monotonic() + timeout
        with discord_client(timeout=timeout, retries=0, max_wait=min(timeout, 0.5)) as client:
            member = client.member_get(guild_id=settings_guild(), user_id=user.discord_id,
                                       deadline=deadline)
        add, remove = role_diff(current=member.roles, wanted=member_wanted_roles(user=user),
                                managed=managed_role_ids())
        if not (add or remove):
            return False
        role_sync_request(user_id=user.pk, reason="login")
        return True
    except DiscordNotFound:
        return False
    except DiscordError as exc:
        log.info("login role check for user %s: %s; queueing a sync", user.pk, exc.summary())
        try:
            role_sync_request(user_id=user.pk, reason="login")
        except Exception:
            log.exception("could not queue a role sync at login")
            return False
        return True
    except Exception:
        log.exception("login role check for user %s failed", user.pk)
        return False
