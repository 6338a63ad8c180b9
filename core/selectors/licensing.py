"""Reads for the licence check: the signing key pair and the subscription a check is about."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, cast

from django.conf import settings
from django.db.models import FilteredRelation, OuterRef, Q, Subquery
from nacl.signing import SigningKey

from core.models import LicenseKey, LoaderRelease, Product, Subscription

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


def latest_release() -> LoaderRelease | None:
    """The newest published loader release (version and checksum only)."""
    return (LoaderRelease.objects.filter(published=True).order_by("-created_at", "-id")
            .only("version", "sha256").first())


def _latest(column: str) -> Subquery:
    return Subquery(LoaderRelease.objects.filter(published=True)
                    .order_by("-created_at", "-id").values(column)[:1])


@dataclass(frozen=True)
class KeyLookup:
    """What the licence check by key reads, from one query."""

    licence: LicenseKey | None
    subscription: Subscription | None  # the owner's, to the key's product
    latest_version: str | None  # the newest published release, signed into a valid answer
    latest_sha256: str | None


def license_key_by_digest(*, lookup: str) -> KeyLookup:
    """The key with its product and owner, the owner's subscription to that product and the
    latest release: one query, the same statement whether or not anything is found."""
    mine = Subscription.objects.filter(user_id=OuterRef("redeemed_by_id"),
                                       product_id=OuterRef("product_id"))
    # Only the columns the check reads: building a full user row costs more than the query,
    # and would make a found key measurably slower to refuse than an unknown one.
    licence = (
        LicenseKey.objects.select_related("product", "redeemed_by")
        .only("status", "product__slug", "product__is_active", "redeemed_by__username",
              "redeemed_by__is_active")
        .annotate(sub_pk=Subquery(mine.values("pk")[:1]),
                  sub_expires_at=Subquery(mine.values("expires_at")[:1]),
                  sub_hwid_digest=Subquery(mine.values("hwid_digest")[:1]),
                  latest_version=_latest("version"), latest_sha256=_latest("sha256"))
        .filter(code_digest=lookup)
        .first()
    )
    if licence is None:
        return KeyLookup(None, None, None, None)
    row = cast(Any, licence)  # the annotations
    subscription = None
    if row.sub_pk is not None:  # a subscription was found, so the key has an owner
        subscription = _loaded(Subscription(
            pk=row.sub_pk, user_id=row.redeemed_by_id, product_id=licence.product_id,
            expires_at=row.sub_expires_at, hwid_digest=row.sub_hwid_digest))
    return KeyLookup(licence, subscription, row.latest_version, row.latest_sha256)


def _loaded(subscription: Subscription) -> Subscription:
    subscription._state.adding = False  # a row that exists, as if loaded by the ORM
    subscription._state.db = "default"
    return subscription



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
    return product, _loaded(Subscription(pk=row["mine__pk"], user_id=user_id, product=product,
                                         expires_at=row["mine__expires_at"],
                                         hwid_digest=row["mine__hwid_digest"]))
