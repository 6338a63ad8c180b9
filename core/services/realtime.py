"""Real-time events for a member's open pages (Django Channels, one group per member).

Services call `member_notify` inside their transaction; the event leaves only after commit,
so a page never hears of a change that was rolled back. Delivery is best effort: the channel
layer (Redis) being down costs the push, never the request, and pages also refresh from the
API when their socket is gone.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger("zspb.realtime")

# The events a page may receive: {"event": <name>, "data": {...}}.
EVENTS = frozenset({
    "key_redeemed",
    "subscription_extended",
    "subscription_expired",
    "role_changed",
    "invite_used",
    "discord_linked",
    "discord_unlinked",
    "banned",
    "sessions_ended",
})


def member_group(user_id: int) -> str:
    return f"member.{int(user_id)}"


def _send(user_id: int, event: str, data: dict[str, Any]) -> None:
    try:
        layer = get_channel_layer()
        if layer is None:
            return
        async_to_sync(layer.group_send)(
            member_group(user_id), {"type": "member.event", "event": event, "data": data}
        )
    except Exception:  # the push is a courtesy: never fail the change that caused it
        log.warning("could not push %s to member %s", event, user_id, exc_info=True)


def member_notify(*, user_id: int, event: str, data: dict[str, Any] | None = None) -> None:
    """Push `event` to every open page of the member once the current transaction commits."""
    if event not in EVENTS:
        raise ValueError(f"unknown member event {event!r}")
    transaction.on_commit(partial(_send, int(user_id), event, dict(data or {})))
