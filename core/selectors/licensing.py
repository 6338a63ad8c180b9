"""Reads for the licence check: the signing key pair and the subscription a check is about."""

from __future__ import annotations

import base64
from functools import lru_cache
from typing import Final

from django.conf import settings
from django.db.models import FilteredRelation, Q
from nacl.signing import SigningKey

from core.models import LicenseKey, Product, Subscription

ALGORITHM: Final = "Ed25519"


def license_signing_key() -> SigningKey:
    # Keyed by the seed in settings, so a changed setting (a test's override) takes effect.
    return _signing_key(settings.LICENSE_SIGNING_KEY)


@lru_cache(maxsize=4)
def _signing_key(seed: str) -> SigningKey:
    # Deriving the key pair from its seed is a scalar multiplication: once per process.
    return SigningKey(bytes.fromhex(seed))


def license_public_key() -> str:
    """Base64 of the 32-byte Ed25519 public key that loaders pin."""
    return base64.b64encode(bytes(license_signing_key().verify_key)).decode("ascii")


def license_key_by_digest(*, lookup: str) -> LicenseKey | None:
    # Only the columns the check reads: building a full user row costs more than the query,
    # and would make a found key measurably slower to refuse than an unknown one.
    return (
        LicenseKey.objects.select_related("product", "redeemed_by")
        .only("status", "product__slug", "product__is_active", "redeemed_by__username",
              "redeemed_by__is_active")
        .filter(code_digest=lookup)
        .first()
    )


def subscription_of(*, user_id: int, product_id: int) -> Subscription | None:
    return (Subscription.objects.filter(user_id=user_id, product_id=product_id)
            .only("user_id", "product_id", "expires_at", "hwid_digest").first())



def product_and_subscription(
    *, user_id: int, product_slug: str
) -> tuple[Product | None, Subscription | None]:
    """The product by slug and the user's subscription to it, in one query whether or not
    either exists (the account check's cost must not depend on the refusal reason)."""
    row = (Product.objects.filter(slug=product_slug)
           .annotate(mine=FilteredRelation("subscriptions",
                                           condition=Q(subscriptions__user_id=user_id)))
           .values("pk", "is_active", "mine__pk", "mine__expires_at", "mine__hwid_digest")
           .first())
    if row is None:
        return None, None
    product = Product(pk=row["pk"], slug=product_slug, is_active=row["is_active"])
    if row["mine__pk"] is None:
        return product, None
    subscription = Subscription(pk=row["mine__pk"], user_id=user_id, product=product,
                                expires_at=row["mine__expires_at"],
                                hwid_digest=row["mine__hwid_digest"])
    subscription._state.adding = False  # a row that exists, as if loaded by the ORM
    subscription._state.db = "default"
    return product, subscription
