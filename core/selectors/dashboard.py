"""Numbers of the staff dashboard, each a cheap query whatever the table sizes.

Large PostgreSQL tables are counted from the planner's statistics (pg_class.reltuples for a
whole table, the plan's row estimate for a filtered one) instead of a full COUNT(*); small
tables and other databases are counted exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from django.conf import settings
from django.db import connection, models
from django.db.models import Model, Q, QuerySet
from django.utils import timezone

from core.discord.rest import discord_enabled
from core.models import Ban, LicenseKey, RoleSyncRequest, Subscription, User

# Below this many rows an exact COUNT(*) is cheap enough.
EXACT_BELOW = 50_000
HISTORY_DAYS = 30


@dataclass(frozen=True)
class Count:
    value: int
    estimated: bool = False


def table_estimate(model: type[Model]) -> int | None:
    """Rows in the model's table per PostgreSQL's statistics; None elsewhere or unknown."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                       [model._meta.db_table])
        row = cursor.fetchone()
    # -1: never analysed (PostgreSQL 14+); 0 may also mean "not analysed yet".
    if row is None or row[0] is None or row[0] <= 0:
        return None
    return int(row[0])


def estimated_count(queryset: QuerySet[Model], *, exact_below: int = EXACT_BELOW) -> Count:
    """COUNT(*) when cheap, otherwise PostgreSQL's estimate of the same query."""
    rows = table_estimate(queryset.model)
    if rows is None or rows < exact_below:
        return Count(queryset.count())
    if not queryset.query.where:
        return Count(rows, estimated=True)
    plan = json.loads(queryset.order_by().explain(format="json"))
    return Count(int(plan[0]["Plan"]["Plan Rows"]), estimated=True)


def queue_length() -> int:
    """Tasks waiting in django-q2's broker (the ORM broker: unlocked rows of its queue)."""
    from django_q.brokers import get_broker

    return int(get_broker().queue_size())


@dataclass(frozen=True)
class DayCounts:
    start: datetime
    registrations: int
    redemptions: int


@dataclass(frozen=True)
class DashboardSnapshot:
    """Every number of the dashboard, read in one go: today's tiles are the last day of the
    history, so a tile and its chart can never disagree."""

    users: Count
    active_subscriptions: Count
    free_keys: Count
    active_bans: int
    queue_length: int
    queue_warning: bool
    discord_on: bool
    role_sync_backlog: int
    history: list[DayCounts]

    @property
    def registrations_today(self) -> int:
        return self.history[-1].registrations

    @property
    def redemptions_today(self) -> int:
        return self.history[-1].redemptions


def _per_day(queryset: QuerySet[Model], field: str,
             days: list[tuple[datetime, datetime]]) -> list[int]:
    """Rows per day in one query over the window only (an index range on `field`)."""
    window = queryset.filter(**{f"{field}__gte": days[0][0], f"{field}__lt": days[-1][1]})
    counts = window.aggregate(**{
        f"d{i}": models.Count("pk", filter=Q(**{f"{field}__gte": a, f"{field}__lt": b}))
        for i, (a, b) in enumerate(days)
    })
    return [counts[f"d{i}"] for i in range(len(days))]


def dashboard_history(*, days: int = HISTORY_DAYS, now: datetime | None = None) -> list[DayCounts]:
    """Registrations and redemptions per day of the site's zone, the last `days` days.

    Not cached: both reads touch only the window's rows through indexes (user_date_joined_idx,
    key_redeemed_idx), so the charts are as fresh as the tiles beside them.
    """
    today = timezone.localtime(now or timezone.now()).replace(hour=0, minute=0, second=0,
                                                               microsecond=0)
    # Day bounds in the local zone: a DST change makes a day 23 or 25 hours long.
    starts = [timezone.make_aware(datetime.combine(today.date() - timedelta(days=i),
                                                   datetime.min.time()))
              for i in range(days - 1, -2, -1)]
    bounds = list(pairwise(starts))
    joined = _per_day(User.objects.all(), "date_joined", bounds)
    redeemed = _per_day(LicenseKey.objects.all(), "redeemed_at", bounds)
    return [DayCounts(start=a, registrations=j, redemptions=r)
            for (a, _b), j, r in zip(bounds, joined, redeemed, strict=True)]


def dashboard_snapshot(*, now: datetime | None = None) -> DashboardSnapshot:
    now = now or timezone.now()
    queued = queue_length()
    return DashboardSnapshot(
        users=estimated_count(User.objects.all()),
        active_subscriptions=estimated_count(Subscription.objects.active(now)),
        free_keys=estimated_count(LicenseKey.objects.filter(status=LicenseKey.Status.FREE)),
        active_bans=Ban.objects.active(now).count(),
        queue_length=queued,
        queue_warning=queued > settings.QUEUE_WARN_THRESHOLD,
        discord_on=discord_enabled(),
        # Requests wait in the outbox while Discord is off and drain once it is on.
        role_sync_backlog=RoleSyncRequest.objects.count(),
        history=dashboard_history(now=now),
    )
