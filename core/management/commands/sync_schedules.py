from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django_q.models import Schedule

from core.schedules import SCHEDULES


class Command(BaseCommand):
    help = "Write the periodic jobs declared in core/schedules.py to django-q2."

    def handle(self, *args: Any, **options: Any) -> None:
        for spec in SCHEDULES:
            Schedule.objects.update_or_create(
                name=spec.name,
                defaults={
                    "func": spec.func,
                    "schedule_type": Schedule.MINUTES,
                    "minutes": spec.minutes,
                    "repeats": -1,
                },
            )
        stale = Schedule.objects.filter(name__startswith="zspb:").exclude(
            name__in=[s.name for s in SCHEDULES]
        )
        stale.delete()
        self.stdout.write(f"schedules: {', '.join(s.name for s in SCHEDULES)}")
