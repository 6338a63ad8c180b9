"""Periodic jobs, declared here and written to django-q2 by `manage.py sync_schedules`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    func: str
    minutes: int


SCHEDULES: tuple[ScheduleSpec, ...] = (
    ScheduleSpec(name="zspb:expire-bans", func="core.tasks.expire_bans", minutes=1),
    # Discord: role sync is also queued on commit after each change; the minute schedule
    # retries what failed and applies subscription expiries.
    ScheduleSpec(name="zspb:rolesync-drain", func="core.tasks.rolesync_drain", minutes=1),
    ScheduleSpec(name="zspb:rolesync-reconcile", func="core.tasks.rolesync_reconcile",
                 minutes=360),
    ScheduleSpec(name="zspb:webhooks", func="core.tasks.deliver_webhooks", minutes=1),
    # Real time: members' open pages hear when a subscription ends (nothing is written then).
    ScheduleSpec(name="zspb:member-expiry-push", func="core.tasks.notify_expired_subscriptions",
                 minutes=1),
    # Login logs (django-axes) kept core.services.lockouts.ACCESS_LOG_RETENTION_DAYS days.
    ScheduleSpec(name="zspb:trim-access-logs", func="core.tasks.trim_access_logs",
                 minutes=1440),
    # Journal entries kept journals.<name>.retention_days days (config.yaml).
    ScheduleSpec(name="zspb:prune-journals", func="core.tasks.prune_journals", minutes=1440),
    # Successful licence checks, counted in Redis, added to their per-day rows.
    ScheduleSpec(name="zspb:licence-check-counts", func="core.tasks.flush_license_check_counts",
                 minutes=1),
)
