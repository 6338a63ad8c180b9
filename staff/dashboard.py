"""The admin index: today's numbers and 30-day charts (unfold's DASHBOARD_CALLBACK)."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils import formats
from django.utils.translation import gettext as _

from core.selectors.dashboard import dashboard_snapshot


def _chart(labels: list[str], *series: tuple[str, list[int], str]) -> str:
    return json.dumps({
        "labels": labels,
        "datasets": [
            {"label": label, "data": data, "borderColor": color, "backgroundColor": color}
            for label, data, color in series
        ],
    })


def dashboard_callback(request: HttpRequest, context: dict[str, Any]) -> dict[str, Any]:
    snapshot = dashboard_snapshot()
    history = snapshot.history
    labels = [formats.date_format(day.start, "M j") for day in history]
    context.update({
        "numbers": snapshot,
        "queue_threshold": settings.QUEUE_WARN_THRESHOLD,
        "registrations_chart": _chart(
            labels, (_("Registrations"), [day.registrations for day in history],
                     "var(--color-primary-600)")),
        "redemptions_chart": _chart(
            labels, (_("Redemptions"), [day.redemptions for day in history],
                     "var(--color-primary-400)")),
        "history_totals": {
            "registrations": sum(day.registrations for day in history),
            "redemptions": sum(day.redemptions for day in history),
        },
    })
    return context
