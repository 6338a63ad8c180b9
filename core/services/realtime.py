"""Real-time events for a member's open pages (Django Channels, one group per member).

Services call `member_notify` inside their transaction; the event leaves only after commit,
so a page never hears of a change that was rolled back. Delivery is best effort: the channel
layer (Redis) being down costs the push, never the request, and pages also refresh from the
API when their socket is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from core.models import Product, Subscription
from core.services.tasklock import lock_acquire, lock_release

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


Push = tuple[int, str, dict[str, Any]]  # (user id, event, data)


async def _group_send_all(layer: Any, pushes: Sequence[Push]) -> None:
    """The pushes in order. The Redis layer (core.channel_layer) sends a batch in two round
    trips per Redis host and thousand pushes, skipping members with no page open (most of
    the minute's expiries); other layers (in-memory, tests) get a group_send each."""
    sends = [(member_group(user_id), {"type": "member.event", "event": event, "data": data})
             for user_id, event, data in pushes]
    send_many = getattr(layer, "group_send_many", None)
    if send_many is not None:
        await send_many(sends)
        return
    for group, message in sends:
        await layer.group_send(group, message)


def _send_all(pushes: Sequence[Push]) -> None:
    """Send the pushes in one trip to the event loop (one Redis connection outside ASGI)."""
    try:
        layer = get_channel_layer()
        if layer is None:
            return
        async_to_sync(_group_send_all)(layer, pushes)
    except Exception:  # the push is a courtesy: never fail the change that caused it
        log.warning("could not push %d event(s), first %s to member %s", len(pushes),
                    pushes[0][1], pushes[0][0], exc_info=True)


def _send(user_id: int, event: str, data: dict[str, Any]) -> None:
    _send_all([(user_id, event, data)])


def member_notify(*, user_id: int, event: str, data: dict[str, Any] | None = None) -> None:
    """Push `event` to every open page of the member once the current transaction commits."""
    if event not in EVENTS:
        raise ValueError(f"unknown member event {event!r}")
    transaction.on_commit(partial(_send, int(user_id), event, dict(data or {})))


def subscription_event_data(
    *, product: Product, expires_at: datetime, extended: bool
) -> dict[str, Any]:
    """The data of key_redeemed and subscription_extended.

    `extended` is true when time was added to a subscription that was still running; false
    when a new period started (new or lapsed subscription) or staff brought the end forward.
    """
    return {"product": product.slug, "product_name": product.name,
            "expires_at": expires_at.isoformat(), "extended": extended}


# Expiry: time passing changes nothing in the database, so ended subscriptions are polled.
EXPIRED_MARK_KEY = "zspb:realtime:expired-until"
EXPIRED_LOCK_KEY = "zspb:realtime:expired-lock"
EXPIRED_LOOKBACK = timedelta(hours=1)
EXPIRED_LOCK_SECONDS = 300
# Pushes per trip to the channel layer (each trip starts an event loop and a connection).
EXPIRED_BATCH = 5000
EXPIRED_FETCH = 2000


def subscriptions_notify_expired(*, now: datetime | None = None) -> int:
    """Push "subscription_expired" for subscriptions that ended since the last run.

    Run every minute by the scheduler. The end of the previous window is kept in the cache;
    without it (first run, cache lost), or when it is older, at most EXPIRED_LOOKBACK is looked
    back, so a stopped worker does not replay a day of expiries on restart. The window is
    (mark, now], so consecutive runs never push the same end twice; a second run at the same
    time (an overlapping schedule) finds the lock taken and pushes nothing. Banned members
    have no open page and are skipped. Returns how many events were pushed.
    """
    now = now or timezone.now()
    token = lock_acquire(EXPIRED_LOCK_KEY, ttl=EXPIRED_LOCK_SECONDS)
    if token is None:
        return 0
    try:
        mark = cache.get(EXPIRED_MARK_KEY)
        since = now - EXPIRED_LOOKBACK
        if isinstance(mark, datetime) and mark > since:
            since = mark
        if since >= now:
            return 0
        # Three columns a row, the few products once: a model instance per ended
        # subscription cost more than the pushes themselves at 100,000 a minute.
        rows = (
            Subscription.objects.ended_between(since, now).filter(user__is_active=True)
            .order_by("expires_at", "pk").values_list("user_id", "product_id", "expires_at")
        )
        products = {p.pk: (p.slug, p.name) for p in Product.objects.only("slug", "name")}
        pushes: list[Push] = []
        for user_id, product_id, expires_at in rows.iterator(chunk_size=EXPIRED_FETCH):
            slug, name = products[product_id]
            pushes.append((user_id, "subscription_expired", {
                "product": slug, "product_name": name, "expires_at": expires_at.isoformat(),
            }))
        for start in range(0, len(pushes), EXPIRED_BATCH):
            _send_all(pushes[start:start + EXPIRED_BATCH])
        cache.set(EXPIRED_MARK_KEY, now, timeout=None)
        return len(pushes)
    finally:
        lock_release(EXPIRED_LOCK_KEY, token)
