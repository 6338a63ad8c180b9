from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from django.db import connection
from django.db.models import Count, Model, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from core.db import aware_datetime
from core.errors import NotFound
from core.models import Ban, Invite, LicenseKey, Product, Role, Subscription, User
from core.models.bans import BanQuerySet
from core.selectors.invites import (
    counted_this_month_params,
    counted_this_month_sql,
    invite_quota,
)


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
    """Everything the stats pages show, in two queries whatever the data size: the user with
    every count and the active ban (correlated subqueries on indexed columns), then the
    subscriptions. The dashboard runs it on every visit.

    Written as SQL, built once: composing these statements through the ORM cost about 10 ms
    of CPU per call (measured in process), most of the dashboard page's time. The quota and
    ban rules come from their own modules (counted_this_month_sql, BanQuerySet.active_sql)."""
    now = now or timezone.now()
    params: dict[str, Any] = {"user_id": user_id, "now": now,
                                 "used": Invite.Status.USED.value,
                                 **counted_this_month_params(now)}
    with connection.cursor() as cursor:
        cursor.execute(_user_sql(), params)
        row = cursor.fetchone()
        if row is None:
            raise NotFound(_("User not found."))
        cursor.execute(_subscriptions_sql(), {"user_id": user_id})
        subscription_rows = cursor.fetchall()
    (pk, username, date_joined, is_superuser, discord_id, discord_username, role_id, role_name,
     role_quota, inviter, invites_total, invites_used, invites_this_month, redeemed_count,
     ban_id, ban_reason, ban_ends_at) = row
    subs = []
    for slug, name, started_at, expires_at in subscription_rows:
        expires_at = aware_datetime(expires_at)
        subs.append(SubscriptionView(product=slug, product_name=name,
                                     started_at=aware_datetime(started_at), expires_at=expires_at,
                                     active=expires_at > now))
    role = Role(pk=role_id, name=role_name, invite_quota=role_quota) if role_id else None
    quota = invite_quota(user=User(pk=pk, is_superuser=is_superuser, role=role))
    banned = ban_id is not None
    return UserStats(
        id=pk,
        username=username,
        role=role_name,
        date_joined=aware_datetime(date_joined),
        invited_by=inviter,
        invites_created=invites_total,
        invites_used=invites_used,
        invite_quota=quota,
        invites_left_this_month=(None if quota is None
                                 else max(quota - invites_this_month, 0)),
        keys_redeemed=redeemed_count,
        # Whole days left across every active subscription.
        days_left_total=sum(int((s.expires_at - now).total_seconds() // 86400)
                            for s in subs if s.active),
        discord_linked=discord_id is not None,
        discord_username=discord_username,
        banned=banned,
        ban_reason=ban_reason if banned else None,
        ban_ends_at=aware_datetime(ban_ends_at) if banned and ban_ends_at is not None else None,
        subscriptions=subs,
    )


@lru_cache(maxsize=1)
def _user_sql() -> str:
    user, role, invite = User._meta.db_table, Role._meta.db_table, Invite._meta.db_table
    key, ban = LicenseKey._meta.db_table, Ban._meta.db_table

    def invites(condition: str) -> str:
        return (f"(SELECT count(*) FROM {invite} i "  # noqa: S608
                f"WHERE i.created_by_id = u.id{condition})")

    # Only table names from the models and the rules' own conditions are interpolated; the
    # values are parameters. At most one open ban per user (ban_one_open_per_user).
    return (
        f"SELECT u.id, u.username, u.date_joined, u.is_superuser, u.discord_id, "  # noqa: S608
        f"u.discord_username, r.id, r.name, r.invite_quota, inviter.username, "
        f"{invites('')}, {invites(' AND i.status = %(used)s')}, "
        f"{invites(' AND ' + counted_this_month_sql('i'))}, "
        f"(SELECT count(*) FROM {key} k WHERE k.redeemed_by_id = u.id), "
        f"b.id, b.reason, b.ends_at "
        f"FROM {user} u LEFT JOIN {role} r ON r.id = u.role_id "
        f"LEFT JOIN {user} inviter ON inviter.id = u.invited_by_id "
        f"LEFT JOIN {ban} b ON b.user_id = u.id AND {BanQuerySet.active_sql('b')} "
        f"WHERE u.id = %(user_id)s"
    )


@lru_cache(maxsize=1)
def _subscriptions_sql() -> str:
    subscription, product = Subscription._meta.db_table, Product._meta.db_table
    return (
        f"SELECT p.slug, p.name, s.started_at, s.expires_at "  # noqa: S608
        f"FROM {subscription} s JOIN {product} p ON p.id = s.product_id "
        f"WHERE s.user_id = %(user_id)s ORDER BY s.expires_at DESC, s.id"
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
