from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from django.utils import timezone
from ninja import Router, Schema

from api.auth import current_user, member_auth
from api.errors import ERRORS
from api.keys import SubscriptionOut
from api.schemas import Slug
from core.models import Subscription
from core.selectors.subscriptions import subscriptions_of_user
from core.services.licensing import subscription_hwid_self_reset

router = Router(tags=["subscriptions"], auth=member_auth)


class SubscriptionsOut(Schema):
    now: datetime
    items: list[SubscriptionOut]


@router.get("", response={200: SubscriptionsOut, **ERRORS}, operation_id="subscriptions_list",
            summary="My subscriptions (one per product) with the server's current time")
def list_subscriptions(request: HttpRequest) -> dict[str, object]:
    # One row per product at most, so this list is bounded and not paginated.
    subs = subscriptions_of_user(user=current_user(request))
    return {"now": timezone.now(), "items": list(subs)}


@router.post("/{product}/reset-machine", response={200: SubscriptionOut, **ERRORS},
             operation_id="subscriptions_reset_machine",
             summary="Unbind the machine of my subscription (once per cooldown)")
def reset_machine(request: HttpRequest, product: Slug) -> Subscription:
    return subscription_hwid_self_reset(user=current_user(request), product_slug=product)
