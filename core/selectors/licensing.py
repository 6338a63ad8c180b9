"""Reads for the licence check: the signing key pair and the subscription a check is about."""

from __future__ import annotations

import base64
from typing import Final

from django.conf import settings
from nacl.signing import SigningKey

from core.models import LicenseKey, Subscription

ALGORITHM: Final = "Ed25519"


def license_signing_key() -> SigningKey:
    # Derived from settings on each call (microseconds): no module state to share or go stale.
    return SigningKey(bytes.fromhex(settings.LICENSE_SIGNING_KEY))


def license_public_key() -> str:
    """Base64 of the 32-byte Ed25519 public key that loaders pin."""
    return base64.b64encode(bytes(license_signing_key().verify_key)).decode("ascii")


def license_key_by_digest(*, lookup: str) -> LicenseKey | None:
    return (
        LicenseKey.objects.select_related("product", "redeemed_by")
        .filter(code_digest=lookup)
        .first()
    )


def subscription_of(*, user_id: int, product_id: int) -> Subscription | None:
    return Subscription.objects.filter(user_id=user_id, product_id=product_id).first()


def subscription_by_slug(*, user_id: int, product_slug: str) -> Subscription | None:
    return (
        Subscription.objects.select_related("product")
        .filter(user_id=user_id, product__slug=product_slug)
        .first()
    )
