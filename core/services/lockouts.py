"""Login lock-outs (django-axes): lifted by staff through axes' own reset API, journaled; old
access logs trimmed by a periodic job.

Axes locks out a username *and* IP pair (AXES_LOCKOUT_PARAMETERS), so a lift resets exactly
the pair of the selected attempt, never every attempt of an address or a name.
"""

from __future__ import annotations

from collections.abc import Sequence

from axes.handlers.proxy import AxesProxyHandler
from axes.models import AccessAttempt
from django.db import transaction

from core.models import User
from core.services.access import ensure_capability, ensure_outranks
from core.services.logs import Category, log_event

# Successful and failed login logs older than this many days are deleted by the job
# zspb:trim-access-logs (core/schedules.py). Lock-outs themselves are not touched by it.
ACCESS_LOG_RETENTION_DAYS = 90
LIFT_MAX = 1000


def lockout_lift(*, actor: User, attempt_ids: Sequence[int]) -> int:
    """Lift the lock-outs of the selected attempts; returns how many attempt rows axes reset.

    manage_users only; an attempt naming an existing account follows the rank rules (nobody
    lifts their own lock-out or that of someone ranked at or above them).
    """
    ensure_capability(actor, "manage_users")
    attempts = list(AccessAttempt.objects.filter(pk__in=list(attempt_ids)[:LIFT_MAX])
                    .values_list("username", "ip_address").distinct())
    pairs = sorted({(username or "", ip or "") for username, ip in attempts})
    accounts = {user.username.lower(): user for user in User.objects.select_related("role")
                .filter(username__in=[username for username, _ip in pairs if username])}
    for username, _ip in pairs:
        target = accounts.get(username.lower())
        if target is not None:
            ensure_outranks(actor, target)
    lifted = 0
    with transaction.atomic():
        for username, ip in pairs:
            if not (username or ip):
                continue  # axes would read two empty filters as "reset everything"
            count: int = AxesProxyHandler.reset_attempts(ip_address=ip or None,
                                                         username=username or None)
            lifted += count
            # The address is personal data and stays out of the journal.
            log_event(category=Category.MODERATION, action="lockout.lift", actor=actor,
                      target=accounts.get(username.lower()),
                      data={"username": username, "attempts": count})
    return lifted


def access_logs_trim(*, older_than_days: int = ACCESS_LOG_RETENTION_DAYS) -> int:
    """Delete axes' access logs and failure logs older than the retention; returns how many."""
    logs: int = AxesProxyHandler.reset_logs(age_days=older_than_days)
    failures: int = AxesProxyHandler.reset_failure_logs(age_days=older_than_days)
    return logs + failures
