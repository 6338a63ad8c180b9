"""Who may read which statistics: the capability check in front of core.selectors.stats
(selectors only read and never check access)."""

from __future__ import annotations

from datetime import datetime

from core.models import User
from core.selectors.stats import PeriodStats, UserStats, stats_history, user_stats
from core.services.access import ensure_capability


def stats_user_for_viewer(*, viewer: User, user_id: int) -> UserStats:
    """Own stats for everyone; anyone else's for Support and above."""
    if viewer.pk != user_id:
        ensure_capability(viewer, "view_any_stats")
    return user_stats(user_id=user_id)


def stats_history_for_viewer(*, viewer: User, days: int, weeks: int,
                             now: datetime | None = None) -> dict[str, list[PeriodStats]]:
    """Registrations, redemptions and active subscriptions per period (staff)."""
    ensure_capability(viewer, "view_any_stats")
    return stats_history(days=days, weeks=weeks, now=now)
