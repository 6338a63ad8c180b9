from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from core.models import Invite, User


def month_start(at: datetime) -> datetime:
    """Start of the calendar month containing `at`, in the site's time zone (TIME_ZONE)."""
    local = timezone.localtime(at)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def counted_this_month(now: datetime) -> Q:
    """The invites that use up quota: created this month and not revoked (a revoke refunds).
    A condition, so that a query over several users' invites can count with it too."""
    return Q(created_at__gte=month_start(now)) & ~Q(status=Invite.Status.REVOKED)


def counted_this_month_sql(alias: str) -> str:
    """counted_this_month as an SQL condition on the invite table aliased `alias`, for
    statements written in SQL (core.selectors.stats); its parameters come from
    counted_this_month_params. A test holds the two to the same rows."""
    return f"{alias}.created_at >= %(month_start)s AND {alias}.status <> %(revoked)s"


def counted_this_month_params(now: datetime) -> dict[str, Any]:
    return {"month_start": month_start(now), "revoked": Invite.Status.REVOKED.value}


def invites_counted_this_month(*, user: User, now: datetime) -> int:
    return Invite.objects.filter(counted_this_month(now), created_by=user).count()


def invite_quota(*, user: User) -> int | None:
    """Monthly quota of the user's role; None means unlimited."""
    if user.is_superuser:
        return None
    if user.role is None:
        return 0
    return user.role.invite_quota


def invite_quota_left(*, user: User, now: datetime | None = None) -> int | None:
    quota = invite_quota(user=user)
    if quota is None:
        return None
    used = invites_counted_this_month(user=user, now=now or timezone.now())
    return max(quota - used, 0)


@dataclass(frozen=True)
class QuotaStatus:
    quota: int | None  # None = unlimited
    used: int
    left: int | None
    resets_at: datetime


def invite_quota_status(*, user: User, now: datetime | None = None) -> QuotaStatus:
    """This month's quota, what is used of it and when it starts again."""
    now = now or timezone.now()
    total = invite_quota(user=user)
    used = invites_counted_this_month(user=user, now=now)
    start = month_start(now)
    resets_at = (start.replace(year=start.year + 1, month=1) if start.month == 12
                 else start.replace(month=start.month + 1))
    return QuotaStatus(quota=total, used=used,
                       left=None if total is None else max(total - used, 0),
                       resets_at=resets_at)


def invites_of_user(*, user: User) -> QuerySet[Invite]:
    return Invite.objects.filter(created_by=user).select_related("used_by")
