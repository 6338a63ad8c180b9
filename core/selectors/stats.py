from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Model, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from core.errors import NotFound
from core.models import Ban, Invite, LicenseKey, Subscription, User
from core.selectors.invites import invite_quota, invites_counted_this_month


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


def user_stats(*, user_id: int, now: datetime | None = None) -> UserStats:
    """Everything the stats pages show, in a fixed number of queries whatever the data size."""
    now = now or timezone.now()
    user = User.objects.select_related("role", "invited_by").filter(pk=user_id).first()
    if user is None:
        raise NotFound(_("User not found."))
    invites = Invite.objects.filter(created_by=user).aggregate(
        total=Count("id"), used=Count("id", filter=Q(status=Invite.Status.USED))
    )
    redeemed = LicenseKey.objects.filter(redeemed_by=user).count()
    ban = Ban.objects.active(now).filter(user=user).first()
    subs = [
        SubscriptionView(product=s.product.slug, product_name=s.product.name,
                         started_at=s.started_at, expires_at=s.expires_at,
                         active=s.active_at(now))
        for s in Subscription.objects.filter(user=user).select_related("product")
        .order_by("-expires_at")
    ]
    quota = invite_quota(user=user)
    used_this_month = invites_counted_this_month(user=user, now=now)
    return UserStats(
        id=user.pk,
        username=user.username,
        role=user.role.name if user.role else None,
        date_joined=user.date_joined,
        invited_by=user.invited_by.username if user.invited_by else None,
        invites_created=invites["total"],
        invites_used=invites["used"],
        invite_quota=quota,
        invites_left_this_month=None if quota is None else max(quota - used_this_month, 0),
        keys_redeemed=redeemed,
        # Whole days left across every active subscription.
        days_left_total=sum(int((s.expires_at - now).total_seconds() // 86400)
                            for s in subs if s.active),
        discord_linked=user.discord_id is not None,
        discord_username=user.discord_username,
        banned=ban is not None,
        ban_reason=ban.reason if ban is not None else None,
        ban_ends_at=ban.ends_at if ban is not None else None,
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
