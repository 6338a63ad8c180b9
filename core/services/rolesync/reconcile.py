"""The periodic side of role sync: expiries, a full reconcile, orphaned Discord members.

Time passing changes wanted roles without any write, so expiries are polled. A periodic
reconcile queues every linked member and strips managed roles from guild members no account
is linked to, so nothing is lost if Discord, the worker or the bot was down.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django_q.tasks import async_task

from core.discord.rest import (
    DiscordAuthError,
    DiscordClient,
    DiscordError,
    discord_client,
    discord_enabled,
)
from core.models import Subscription, User
from core.selectors.discord import managed_role_ids
from core.services.rolesync.drain import (
    UnknownMember,
    alert_once,
    audit_reason,
    converge,
    halt,
    halted,
    settings_guild,
)
from core.services.rolesync.outbox import (
    KEY_PREFIX,
    drain_soon,
    request_many,
    request_selected,
    role_sync_request,
)

log = logging.getLogger("zspb.rolesync")

# Expired subscriptions are looked up since the last run, or this far back without one.
EXPIRY_LOOKBACK = timedelta(hours=1)
RECONCILE_BATCH = 500
ORPHAN_PAGE = 1000
RECONCILE_TIME_BUDGET = 45.0
EXPIRY_MARK_KEY = f"{KEY_PREFIX}:expired-until"


def role_sync_expired(*, now: datetime | None = None, queue_drain: bool = True) -> int:
    """Queue a sync for members whose subscription ended since the last run.

    Time passing changes the wanted roles without any write, so expiry is polled. The mark
    lives in the cache; without it (first run, cache lost) an hour is looked back, and the
    six-hourly reconcile covers anything older. One INSERT ... SELECT queues them all (the
    mark moves only after it commits: a run killed before is repeated whole, which is
    harmless). Returns the requests written.
    """
    now = now or timezone.now()
    if not discord_enabled():
        return 0
    since = cache.get(EXPIRY_MARK_KEY) or now - EXPIRY_LOOKBACK
    ended = Subscription.objects.ended_between(since, now).filter(
        user__discord_id__isnull=False, product__discord_role_id__isnull=False)
    with transaction.atomic():
        queued = request_selected(rows=ended, reason="expiry", now=now)
    cache.set(EXPIRY_MARK_KEY, now, timeout=None)
    if queued and queue_drain:
        drain_soon()
    return queued


# Past this many members an edit queues one full reconcile instead of a row per member.
MEMBERS_SYNC_MAX = 1000


def role_sync_request_members(*, users: QuerySet[User], reason: str) -> int:
    """Queue a role sync for each linked user of `users` (a role or product edit changed
    what they should hold); returns how many are concerned.

    One coalescing request per member normally; more than MEMBERS_SYNC_MAX members are left
    to one reconcile of every linked member after commit (batched, the periodic path), so the
    edit stays a quick request.
    """
    linked = users.filter(discord_id__isnull=False).order_by("pk")
    ids = list(linked.values_list("pk", flat=True)[:MEMBERS_SYNC_MAX + 1])
    if len(ids) > MEMBERS_SYNC_MAX:
        transaction.on_commit(roles_reconcile_all, robust=True)
        return linked.count()
    for user_id in ids:
        role_sync_request(user_id=user_id, reason=reason)
    return len(ids)


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
            request_many(user_ids=ids, reason="reconcile", now=timezone.now())
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
    if not discord_enabled() or halted():
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
                alert_once(key=f"{KEY_PREFIX}:alerted:member-list",
                           action="discord.member_list_forbidden",
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
                    converge(client, guild_id=guild_id, discord_id=member.user_id,
                             wanted=set(), managed=managed, reason=audit_reason("not linked"),
                             deadline=deadline)
                except UnknownMember:
                    continue
                report.stripped += 1
            cursor = max(m.user_id for m in page)
            if len(page) < ORPHAN_PAGE:
                return report
        report.next_after = cursor
    except DiscordAuthError as exc:
        halt(exc)
        report.stopped = "forbidden"
    except DiscordError as exc:
        log.warning("orphan role scan stopped: %s", exc.summary())
        report.stopped = type(exc).__name__
    finally:
        if own:
            client.close()
    return report


def member_strip_soon(*, discord_id: int, reason: str = "account deleted") -> None:
    """For a Discord member no account is linked to (an account about to be deleted, whose
    outbox row goes with it; a member the bot saw gain a managed role): after commit, a task
    removes the managed roles. The orphan scan is the fallback."""
    if discord_enabled():
        transaction.on_commit(
            lambda: async_task("core.tasks.rolesync_strip_member", discord_id, reason),
            robust=True,
        )


def member_roles_strip(
    *, discord_id: int, reason: str = "account deleted", client: DiscordClient | None = None
) -> bool:
    """Remove every managed role from a Discord member no account is linked to.

    Returns whether the member was handled (False: linked again meanwhile, or Discord off).
    """
    if not discord_enabled() or User.objects.filter(discord_id=discord_id).exists():
        return False
    own = client is None
    client = client or discord_client()
    try:
        with contextlib.suppress(UnknownMember):
            converge(client, guild_id=settings_guild(), discord_id=discord_id, wanted=set(),
                     managed=managed_role_ids(), reason=audit_reason(reason),
                     deadline=time.monotonic() + RECONCILE_TIME_BUDGET)
    finally:
        if own:
            client.close()
    return True
