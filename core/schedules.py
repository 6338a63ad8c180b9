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
)
