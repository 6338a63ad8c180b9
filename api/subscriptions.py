from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from django.utils import timezone
from ninja import Router, Schema

from api.auth import current_user, member_auth
from api.errors import ERRORS
from api.keys import SubscriptionOut
from core.selectors.subscriptions import subscriptions_of_user

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
