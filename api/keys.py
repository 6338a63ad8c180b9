from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from django.utils import timezone
from ninja import Router, Schema

from api.auth import current_user, member_auth
from api.errors import ERRORS
from api.net import client_ip
from api.schemas import Code, InputSchema
from core.models import Subscription
from core.services.keys import key_redeem
from core.services.licensing import hwid_self_reset_cooldown

router = Router(tags=["keys"], auth=member_auth)


class RedeemIn(InputSchema):
    key: Code


class SubscriptionOut(Schema):
    product: str
    product_name: str
    started_at: datetime
    expires_at: datetime
    active: bool
    machine_bound: bool
    # When the member may unbind the machine themselves; null = now (or never, when the
    # site allows staff resets only: see machine_self_reset).
    machine_reset_available_at: datetime | None
    machine_self_reset: bool
    # The server's clock, so pages count down without trusting the visitor's clock.
    now: datetime

    @staticmethod
    def resolve_product(sub: Subscription) -> str:
        return sub.product.slug

    @staticmethod
    def resolve_product_name(sub: Subscription) -> str:
        return sub.product.name

    @staticmethod
    def resolve_active(sub: Subscription) -> bool:
        return sub.is_active

    @staticmethod
    def resolve_machine_bound(sub: Subscription) -> bool:
        return bool(sub.hwid_digest)

    @staticmethod
    def resolve_machine_reset_available_at(sub: Subscription) -> datetime | None:
        cooldown = hwid_self_reset_cooldown()
        return sub.hwid_self_reset_available_at(cooldown) if cooldown else None

    @staticmethod
    def resolve_machine_self_reset(sub: Subscription) -> bool:
        return hwid_self_reset_cooldown() is not None

    @staticmethod
    def resolve_now(sub: Subscription) -> datetime:
        return timezone.now()


@router.post("/redeem", response={200: SubscriptionOut, **ERRORS}, operation_id="keys_redeem",
             summary="Redeem a key: starts or extends that product's subscription")
def redeem(request: HttpRequest, body: RedeemIn) -> Subscription:
    return key_redeem(user=current_user(request), code=body.key, ip=client_ip(request))
