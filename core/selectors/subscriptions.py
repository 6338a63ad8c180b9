from __future__ import annotations

from core.models import Subscription, User
from core.models.subscriptions import SubscriptionQuerySet


def subscriptions_of_user(*, user: User) -> SubscriptionQuerySet:
    return Subscription.objects.filter(user=user).select_related("product").order_by(
        "-expires_at")
