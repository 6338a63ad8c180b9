"""django-q2 task entry points: take ids, re-fetch, call one service, safe to run twice."""

from __future__ import annotations

from django_q.tasks import async_task

from core.services.bans import bans_expire_due
from core.services.keys import TASK_TIME_BUDGET_SECONDS, key_generation_fail, key_generation_run
from core.services.licence_counts import license_checks_flush
from core.services.lockouts import access_logs_trim
from core.services.realtime import subscriptions_notify_expired
from core.services.retention import journal_prune
from core.services.rolesync import (
    member_roles_strip,
    role_sync_drain,
    role_sync_expired,
    roles_reconcile_all,
    roles_strip_orphans,
)
from core.services.webhooks import webhooks_deliver


def expire_bans() -> int:
    return bans_expire_due()


def run_key_generation_job(job_id: int) -> int:
    """Generate a batch's missing keys for a while; queues its own continuation if needed.

    An unexpected error stops the job (shown on its page) and is re-raised for django-q2's
    failure record; a run killed outright is resumed when the broker re-delivers the task.
    """
    try:
        job = key_generation_run(job_id=job_id, time_budget=TASK_TIME_BUDGET_SECONDS)
    except Exception as exc:
        key_generation_fail(job_id=job_id, message=f"{type(exc).__name__}: {exc}")
        raise
    return job.done


def rolesync_drain() -> int:
    """Every minute and on commit after a role change: queue lapsed subscriptions, then apply
    due role-sync rows to Discord. Returns how many members were converged."""
    role_sync_expired(queue_drain=False)
    return role_sync_drain().synced


def rolesync_reconcile() -> int:
    """Every six hours: queue every linked member, then strip managed roles from members no
    account is linked to (continued in further tasks for a large guild)."""
    queued = roles_reconcile_all()
    rolesync_orphans()
    return queued


def rolesync_orphans(after: int = 0) -> int:
    report = roles_strip_orphans(after=after)
    if report.next_after is not None:
        async_task("core.tasks.rolesync_orphans", report.next_after)
    return report.stripped


def rolesync_strip_member(discord_id: int, reason: str = "account deleted") -> bool:
    """A Discord member no account is linked to (after an account's deletion, or seen gaining
    a managed role) loses the managed roles."""
    return member_roles_strip(discord_id=discord_id, reason=reason)


def deliver_webhooks() -> int:
    """Every minute: post pending journal lines to their webhooks. Returns messages sent."""
    return webhooks_deliver().messages


def notify_expired_subscriptions() -> int:
    """Every minute: tell members' open pages which subscriptions have just ended. Returns
    how many events were pushed."""
    return subscriptions_notify_expired()


def trim_access_logs() -> int:
    """Daily: delete login access and failure logs past their retention. Returns how many."""
    return access_logs_trim()


def prune_journals() -> dict[str, int]:
    """Daily: delete journal entries past their journal's retention. Returns how many, per
    journal."""
    return journal_prune()


def flush_license_check_counts() -> int:
    """Every minute: add the successful licence checks counted in Redis to their per-day rows.
    Returns how many checks were added."""
    return license_checks_flush()
