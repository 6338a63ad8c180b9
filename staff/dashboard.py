"""The admin index: today's numbers and 30-day charts (unfold's DASHBOARD_CALLBACK)."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils import formats
from django.utils.translation import gettext as _

from core.selectors.dashboard import dashboard_history, dashboard_numbers


def _chart(labels: list[str], *series: tuple[str, list[int], str]) -> str:
    return json.dumps({
        "labels": labels,
        "datasets": [
            {"label": label, "data": data, "borderColor": color, "backgroundColor": color}
            for label, data, color in series
        ],
    })


def dashboard_callback(request: HttpRequest, context: dict[str, Any]) -> dict[str, Any]:
    numbers = dashboard_numbers()
    history = dashboard_history()
    labels = [formats.date_format(p.start, "M j") for p in history]
    context.update({
        "numbers": numbers,
        "queue_threshold": settings.QUEUE_WARN_THRESHOLD,
        "registrations_chart": _chart(
            labels, (_("Registrations"), [p.registrations for p in history],
                     "var(--color-primary-600)")),
        "redemptions_chart": _chart(
            labels, (_("Redemptions"), [p.redemptions for p in history],
                     "var(--color-primary-400)")),
        "history_totals": {
            "registrations": sum(p.registrations for p in history),
            "redemptions": sum(p.redemptions for p in history),
        },
    })
    return context
