"""Numbers of the staff dashboard, each a cheap query whatever the table sizes.

Large PostgreSQL tables are counted from the planner's statistics (pg_class.reltuples for a
whole table, the plan's row estimate for a filtered one) instead of a full COUNT(*); small
tables and other databases are counted exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Model, Q, QuerySet
from django.utils import timezone

from core.models import Ban, LicenseKey, LogEntry, RoleSyncRequest, Subscription, User
from core.selectors.stats import PeriodStats, stats_history

# Below this many rows an exact COUNT(*) is cheap enough.
EXACT_BELOW = 50_000
HISTORY_DAYS = 30
# The 30-day history aggregates whole tables; the dashboard reuses it for a few minutes.
HISTORY_CACHE_SECONDS = 300


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
class DashboardNumbers:
    users: Count
    active_subscriptions: Count
    free_keys: Count
    redemptions_today: int
    active_bans: int
    queue_length: int
    queue_warning: bool
    role_sync_backlog: int


def dashboard_numbers(*, now: datetime | None = None) -> DashboardNumbers:
    now = now or timezone.now()
    today = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    queued = queue_length()
    return DashboardNumbers(
        users=estimated_count(User.objects.all()),
        active_subscriptions=estimated_count(Subscription.objects.filter(expires_at__gt=now)),
        free_keys=estimated_count(LicenseKey.objects.filter(status=LicenseKey.Status.FREE)),
        # From the journal: (action, created_at) is indexed, redeemed_at on keys is not.
        redemptions_today=LogEntry.objects.filter(action="key.redeem",
                                                  created_at__gte=today).count(),
        active_bans=Ban.objects.filter(lifted_at__isnull=True)
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now)).count(),
        queue_length=queued,
        queue_warning=queued > settings.QUEUE_WARN_THRESHOLD,
        role_sync_backlog=RoleSyncRequest.objects.count(),
    )


def dashboard_history(*, days: int = HISTORY_DAYS, now: datetime | None = None,
                      use_cache: bool = True) -> list[PeriodStats]:
    """Registrations and redemptions per day over the last `days` days (cached briefly)."""
    key = f"zspb:dashboard:history:{days}"
    if use_cache and now is None:
        cached = cache.get(key)
        if cached is not None:
            return list(cached)
    history = stats_history(days=days, weeks=0, now=now)["days"]
    if use_cache and now is None:
        cache.set(key, history, HISTORY_CACHE_SECONDS)
    return history
