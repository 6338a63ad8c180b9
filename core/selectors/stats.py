from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from django.db.models import Count, Model, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from core.errors import NotFound
from core.models import Ban, Invite, LicenseKey, Subscription, User
from core.selectors.invites import counted_this_month, invite_quota


@dataclass(frozen=True)
class SubscriptionView:
    product: str
    product_name: str
    started_at: datetime
    expires_at: datetime
    active: bool


@dataclass(frozen=True)
class UserStats:
    id: int
    username: str
    role: str | None
    date_joined: datetime
    invited_by: str | None
    invites_created: int
    invites_used: int
    invite_quota: int | None
    invites_left_this_month: int | None
    keys_redeemed: int
    days_left_total: int
    discord_linked: bool
    discord_username: str
    banned: bool
    ban_reason: str | None
    ban_ends_at: datetime | None
    subscriptions: list[SubscriptionView]


def _count_of(queryset: QuerySet[Any], field: str) -> Coalesce:
    """The number of rows of `queryset` whose `field` is the outer user: a correlated
    subquery, so that one query reads the user and every count."""
    counted = (queryset.filter(**{field: OuterRef("pk")}).order_by().values(field)
               .annotate(n=Count("*")).values("n"))
    return Coalesce(Subquery(counted), 0)


def user_stats(*, user_id: int, now: datetime | None = None) -> UserStats:
    """Everything the stats pages show, in a fixed number of queries whatever the data size:
    the user with every count and the active ban (one query, correlated subqueries on
    indexed columns), then the subscriptions. The dashboard runs it on every visit."""
    now = now or timezone.now()
    ban = Ban.objects.active(now).filter(user=OuterRef("pk"))  # newest first (Meta.ordering)
    user = (
        User.objects.select_related("role", "invited_by").filter(pk=user_id)
        .annotate(
            invites_total=_count_of(Invite.objects.all(), "created_by"),
            invites_used=_count_of(Invite.objects.filter(status=Invite.Status.USED),
                                   "created_by"),
            invites_this_month=_count_of(Invite.objects.filter(counted_this_month(now)),
                                         "created_by"),
            redeemed_count=_count_of(LicenseKey.objects.all(), "redeemed_by"),
            ban_id=Subquery(ban.values("pk")[:1]),
            ban_reason=Subquery(ban.values("reason")[:1]),
            ban_ends_at=Subquery(ban.values("ends_at")[:1]),
        )
        .first()
    )
    if user is None:
        raise NotFound(_("User not found."))
    extra = cast(Any, user)  # the annotations
    subs = [
        SubscriptionView(product=s.product.slug, product_name=s.product.name,
                         started_at=s.started_at, expires_at=s.expires_at,
                         active=s.active_at(now))
        for s in Subscription.objects.filter(user=user).select_related("product")
        .order_by("-expires_at")
    ]
    quota = invite_quota(user=user)
    banned = extra.ban_id is not None
    return UserStats(
        id=user.pk,
        username=user.username,
        role=user.role.name if user.role else None,
        date_joined=user.date_joined,
        invited_by=user.invited_by.username if user.invited_by else None,
        invites_created=extra.invites_total,
        invites_used=extra.invites_used,
        invite_quota=quota,
        invites_left_this_month=(None if quota is None
                                 else max(quota - extra.invites_this_month, 0)),
        keys_redeemed=extra.redeemed_count,
        # Whole days left across every active subscription.
        days_left_total=sum(int((s.expires_at - now).total_seconds() // 86400)
                            for s in subs if s.active),
        discord_linked=user.discord_id is not None,
        discord_username=user.discord_username,
        banned=banned,
        ban_reason=extra.ban_reason if banned else None,
        ban_ends_at=extra.ban_ends_at if banned else None,
        subscriptions=subs,
    )


@dataclass(frozen=True)
class PeriodStats:
    start: datetime
    end: datetime
    registrations: int
    redemptions: int
    active_subscriptions: int


def _period_counts(bounds: list[tuple[datetime, datetime]]) -> list[PeriodStats]:
    """One aggregate query per table, one filtered COUNT per period: the number of queries
    stays at three whatever the number of rows."""
    def counts(model: type[Model], make: Callable[[datetime, datetime], Q]) -> dict[str, int]:
        found: dict[str, int] = model.objects.aggregate(  # type: ignore[attr-defined]
            **{f"p{i}": Count("id", filter=make(a, b)) for i, (a, b) in enumerate(bounds)}
        )
        return found

    joined = counts(User, lambda a, b: Q(date_joined__gte=a, date_joined__lt=b))
    redeemed = counts(LicenseKey, lambda a, b: Q(redeemed_at__gte=a, redeemed_at__lt=b))
    active = counts(Subscription, lambda a, b: Q(started_at__lt=b, expires_at__gt=a))
    return [
        PeriodStats(start=a, end=b, registrations=joined[f"p{i}"],
                    redemptions=redeemed[f"p{i}"], active_subscriptions=active[f"p{i}"])
        for i, (a, b) in enumerate(bounds)
    ]


def stats_history(*, days: int, weeks: int, now: datetime | None = None) -> dict[str, list[
        PeriodStats]]:
    """Per day (last `days` days) and per ISO week (last `weeks` weeks), in the site's zone."""
    now = timezone.localtime(now or timezone.now())
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    day_bounds = [(today - timedelta(days=i), today - timedelta(days=i - 1))
                  for i in range(days - 1, -1, -1)]
    monday = today - timedelta(days=today.weekday())
    week_bounds = [(monday - timedelta(weeks=i), monday - timedelta(weeks=i - 1))
                   for i in range(weeks - 1, -1, -1)]
    return {"days": _period_counts(day_bounds), "weeks": _period_counts(week_bounds)}
