from __future__ import annotations

from django.db.models import QuerySet

from core.models import Subscription, User


def subscriptions_of_user(*, user: User) -> QuerySet[Subscription]:
    return Subscription.objects.filter(user=user).select_related("product").order_by(
        "-expires_at")
