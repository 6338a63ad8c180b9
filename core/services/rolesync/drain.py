"""The role-sync drain: apply due outbox rows to Discord.

The drain (role_sync_drain, a django-q2 task queued on commit and every minute) reads each due
row, compares the member's roles in Discord with the wanted set and applies only the
difference on managed roles, one PUT/DELETE per role. It is the only writer of Discord roles.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import models
from django.utils import timezone

from core.discord.rest import (
    MISSING_PERMISSIONS,
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
from core.models import RoleSyncRequest
from core.selectors.discord import managed_role_ids, member_wanted_roles, members_wanted_roles
from core.services.logs import Category, log_event
from core.services.rolesync.outbox import (
    ENQUEUED_KEY,
    KEY_PREFIX,
    enqueue_drain,
    unlinked_ids,
)
from core.services.tasklock import lock_acquire, lock_release

log = logging.getLogger("zspb.rolesync")

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
# 403/50013 on one role (above the bot's): that role is left alone this long by every drain,
# then probed again with one request; the other roles and members carry on meanwhile.
FORBIDDEN_ROLE_SECONDS = 600

LOCK_KEY = f"{KEY_PREFIX}:drain-lock"
HALT_KEY = f"{KEY_PREFIX}:halted-until"
AUTH_ALERT_KEY = f"{KEY_PREFIX}:alerted:auth"
FORBIDDEN_ROLE_PREFIX = f"{KEY_PREFIX}:forbidden-role:"
# After an outage, logins skip their Discord check for a while instead of waiting on it.
OUTAGE_KEY = f"{KEY_PREFIX}:outage"
OUTAGE_SECONDS = 60


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


class UnknownMember(Exception):
    pass


def audit_reason(reason: str) -> str:
    return f"ZalypaSPB role sync ({reason})"


def alert_once(*, key: str, action: str, data: dict[str, object]) -> None:
    if cache.add(key, 1, timeout=ALERT_SECONDS):
        log_event(category=Category.ERROR, action=action, data=data)


def converge(
    client: DiscordClient, *, guild_id: int, discord_id: int, wanted: set[int],
    managed: set[int], reason: str, deadline: float,
) -> None:
    """Make one member's managed roles equal `wanted`; raises UnknownMember if not in the guild."""
    try:
        member = client.member_get(guild_id=guild_id, user_id=discord_id, deadline=deadline)
    except DiscordNotFound as exc:
        if exc.code == UNKNOWN_MEMBER:
            raise UnknownMember() from None
        raise
    add, remove = role_diff(current=member.roles, wanted=wanted, managed=managed)
    forbidden = forbidden_roles(add | remove)
    add, remove = add - forbidden, remove - forbidden
    # Removals first: after a ban, access goes before anything else happens.
    for role_id in sorted(remove):
        _role_call(client, add=False, guild_id=guild_id, discord_id=discord_id, role_id=role_id,
                   reason=reason, deadline=deadline)
    for role_id in sorted(add):
        _role_call(client, add=True, guild_id=guild_id, discord_id=discord_id, role_id=role_id,
                   reason=reason, deadline=deadline)


def forbidden_roles(role_ids: set[int]) -> set[int]:
    """The roles among `role_ids` that Discord recently refused to let the bot edit."""
    if not role_ids:
        return set()
    found = cache.get_many([FORBIDDEN_ROLE_PREFIX + str(r) for r in role_ids])
    return {int(key.removeprefix(FORBIDDEN_ROLE_PREFIX)) for key in found}


def _role_call(
    client: DiscordClient, *, add: bool, guild_id: int, discord_id: int, role_id: int,
    reason: str, deadline: float,
) -> None:
    call = client.member_role_add if add else client.member_role_remove
    try:
        call(guild_id=guild_id, user_id=discord_id, role_id=role_id, reason=reason,
             deadline=deadline)
    except DiscordAuthError as exc:
        if exc.status != 403 or exc.code != MISSING_PERMISSIONS:
            raise  # a bad token or no access to the guild: halt (see _drain_one)
        # This role is above the bot's (or the bot lacks Manage Roles): the member's other
        # roles and other members can still be applied. The role is skipped for a while, so
        # it costs one invalid request per period instead of one per member.
        cache.set(FORBIDDEN_ROLE_PREFIX + str(role_id), 1, timeout=FORBIDDEN_ROLE_SECONDS)
        alert_once(key=f"{KEY_PREFIX}:alerted:forbidden-role:{role_id}",
                   action="discord.role_forbidden",
                   data={"role_id": str(role_id), "status": exc.status, "code": exc.code,
                         "hint": "The bot may not edit this role: drag the bot's role above "
                                 "it (Server Settings -> Roles) and check its Manage Roles "
                                 "permission. Members get it at the next reconcile."})
    except DiscordNotFound as exc:
        if exc.code == UNKNOWN_MEMBER:
            raise UnknownMember() from None
        if exc.code != UNKNOWN_ROLE:
            raise
        # A role id in the site's configuration that Discord does not know: other roles can
        # still be applied; staff must fix the id (the error journal says which).
        alert_once(key=f"{KEY_PREFIX}:alerted:role:{role_id}", action="discord.unknown_role",
                   data={"role_id": str(role_id),
                         "hint": "No such role in the guild: fix the Discord role id of the "
                                 "site role or product that uses it."})


def _sync_row(
    client: DiscordClient, row: RoleSyncRequest, *, guild_id: int, managed: set[int],
    deadline: float, wanted: set[int] | None = None,
) -> bool:
    """Converge the row's member(s); False when the linked member is not in the guild."""
    user = row.user
    reason = audit_reason(row.reason)
    for old_id in unlinked_ids(row.reason):
        if old_id == user.discord_id:
            continue  # linked again to the same account: converged below
        with contextlib.suppress(UnknownMember):  # left the guild: nothing to remove
            converge(client, guild_id=guild_id, discord_id=old_id, wanted=set(),
                     managed=managed, reason=reason, deadline=deadline)
    if user.discord_id is None:
        return True
    try:
        converge(client, guild_id=guild_id, discord_id=user.discord_id,
                 wanted=member_wanted_roles(user=user) if wanted is None else wanted,
                 managed=managed, reason=reason, deadline=deadline)
    except UnknownMember:
        return False
    return True


def _unchanged(row: RoleSyncRequest) -> models.QuerySet[RoleSyncRequest]:
    # Only while nobody asked again since we read it: a newer request must not be lost.
    return RoleSyncRequest.objects.filter(pk=row.pk, requested_at=row.requested_at)


def _delete_converged(rows: list[RoleSyncRequest]) -> None:
    """Delete the converged rows nobody asked again for since we read them, in one query.

    Deferred to the end of a batch (a round trip per member showed in the drain's profile); a
    drain dying before this leaves them leased, and the next drain applies them once more
    (no change then: the roles already match)."""
    if not rows:
        return
    unchanged = models.Q()
    for row in rows:
        unchanged |= models.Q(pk=row.pk, requested_at=row.requested_at)
    RoleSyncRequest.objects.filter(unchanged).delete()
    rows.clear()
    cache.delete(AUTH_ALERT_KEY)  # working again: a new failure deserves a new entry


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


def halted() -> bool:
    until = cache.get(HALT_KEY)
    return until is not None and until > time.time()


def halt(exc: DiscordError) -> None:
    cache.set(HALT_KEY, time.time() + AUTH_HALT_SECONDS, timeout=AUTH_HALT_SECONDS)
    alert_once(
        key=AUTH_ALERT_KEY,
        action="discord.role_sync_forbidden",
        data={
            "status": exc.status, "code": exc.code, "error": exc.message[:200],
            "hint": "Role sync is paused: check DISCORD_BOT_TOKEN, the bot's Manage Roles "
                    "permission and that its role is above every managed role.",
        },
    )


def _lock_ttl(time_budget: float) -> int:
    # django-q2 kills a task at its timeout, so a lock never needs to outlive it; a drain
    # killed outright is taken over at once on the same host (tasklock), else after this.
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
    if halted():
        report.stopped = "halted"
        return report
    # One drain at a time keeps a bucket's requests in one place; leases keep it correct
    # even where the cache is per process (development).
    token = lock_acquire(LOCK_KEY, ttl=_lock_ttl(time_budget))
    if token is None:
        report.stopped = "busy"
        return report
    own = client is None
    client = client or discord_client()
    try:
        _drain(client, report, limit=limit, deadline=time.monotonic() + time_budget)
    finally:
        if own:
            client.close()
        lock_release(LOCK_KEY, token)
        cache.delete(ENQUEUED_KEY)
    if report.stopped in ("", "limit", "budget") and RoleSyncRequest.objects.filter(
        not_before__lte=timezone.now()
    ).exists():
        # Rows that arrived while we held the lock, or a backlog larger than one run.
        enqueue_drain()
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
        # The batch's wanted roles in two queries rather than three per member.
        wanted = members_wanted_roles(users=[r.user for r in rows if r.user.discord_id])
        converged: list[RoleSyncRequest] = []
        try:
            for index, row in enumerate(rows):
                if time.monotonic() >= deadline:
                    report.stopped = "budget"
                if report.stopped:
                    _release(rows[index:])
                    break
                processed += 1
                _drain_one(client, row, report, guild_id=guild_id, managed=managed,
                           deadline=deadline, wanted=wanted.get(row.user_id),
                           converged=converged)
        finally:
            _delete_converged(converged)


def _drain_one(
    client: DiscordClient, row: RoleSyncRequest, report: DrainReport, *, guild_id: int,
    managed: set[int], deadline: float, wanted: set[int] | None,
    converged: list[RoleSyncRequest],
) -> None:
    try:
        in_guild = _sync_row(client, row, guild_id=guild_id, managed=managed,
                             deadline=deadline, wanted=wanted)
    except DiscordAuthError as exc:
        _retry_later(row, error=exc.summary(), delay=timedelta(seconds=AUTH_HALT_SECONDS))
        halt(exc)
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
            converged.append(row)  # deleted at the end of the batch (_delete_converged)
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
