"""Staff corrections of subscriptions: extend or shorten one, always with a reason."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from core.errors import InvalidInput, NotFound
from core.models import Subscription, User
from core.services.access import ensure_capability, ensure_outranks
from core.services.logs import Category, log_event
from core.services.realtime import member_notify, subscription_event_data
from core.services.rolesync import role_sync_request

REASON_MAX = 500
MAX_ADJUST = timedelta(days=3650)


def subscription_lock_for_staff(*, actor: User, subscription_id: int) -> Subscription:
    """Lock a subscription for a staff change, refusing owners the actor does not outrank.

    Call inside atomic(); the owner's role comes along for the rank check.
    """
    subscription = (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("user__role", "product")
        .filter(pk=subscription_id)
        .first()
    )
    if subscription is None:
        raise NotFound(_("Subscription not found."))
    ensure_outranks(actor, subscription.user)
    return subscription


def subscription_adjust(
    *, actor: User, subscription_id: int, delta: timedelta, reason: str
) -> Subscription:
    """Move the subscription's end by `delta` (positive extends, negative shortens).

    Extending an expired subscription counts from now, like redeeming a key; shortening never
    moves the end before now (the subscription then simply ends). Rank rules apply: staff
    cannot adjust their own subscriptions or those of equal or higher rank.
    """
    ensure_capability(actor, "manage_users")
    reason = reason.strip()
    if not reason or len(reason) > REASON_MAX:
        raise InvalidInput(_("A reason of 1-%(max)s characters is required.") % {"max": REASON_MAX},
                           fields={"reason": "invalid"})
    if not delta or abs(delta) > MAX_ADJUST:
        raise InvalidInput(_("The change must be non-zero and at most ten years."),
                           fields={"delta": str(delta)})
    now = timezone.now()
    with transaction.atomic():
        subscription = subscription_lock_for_staff(actor=actor, subscription_id=subscription_id)
        old_expires = subscription.expires_at
        if delta > timedelta(0):
            if old_expires <= now:
                subscription.started_at = now
            subscription.expires_at = max(now, old_expires) + delta
        else:
            if old_expires <= now:
                raise InvalidInput(_("This subscription has already expired."),
                                   fields={"delta": "expired"})
            subscription.expires_at = max(now, old_expires + delta)
        subscription.save(update_fields=["started_at", "expires_at", "updated_at"])
        # Whether the subscription is active decides the product's Discord role.
        role_sync_request(user_id=subscription.user_id, reason="subscription_adjust")
        log_event(category=Category.MODERATION, action="subscription.adjust", actor=actor,
                  target=subscription.user,
                  data={"subscription_id": subscription.pk,
                        "product": subscription.product.slug,
                        "delta_seconds": int(delta.total_seconds()), "reason": reason,
                        "old_expires_at": old_expires.isoformat(),
                        "new_expires_at": subscription.expires_at.isoformat()})
        member_notify(user_id=subscription.user_id, event="subscription_extended",
                      data=subscription_event_data(
                          product=subscription.product, expires_at=subscription.expires_at,
                          extended=delta > timedelta(0) and old_expires > now))
    return subscription
