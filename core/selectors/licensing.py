"""Reads for the licence check: the signing key pair and the subscription a check is about."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, TypeVar

from django.conf import settings
from django.db import connection
from django.db.models import FilteredRelation, Model, Q
from nacl.signing import SigningKey

from core.db import aware_datetime
from core.models import LicenseKey, LoaderRelease, Product, Subscription, User

ALGORITHM: Final = "Ed25519"
M = TypeVar("M", bound=Model)


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


@dataclass(frozen=True)
class KeyLookup:
    """What the licence check by key reads, from one query."""

    licence: LicenseKey | None
    subscription: Subscription | None  # the owner's, to the key's product
    latest_version: str | None  # the newest published release, signed into a valid answer
    latest_sha256: str | None


def license_key_by_digest(*, lookup: str) -> KeyLookup:
    """The key with its product and owner, the owner's subscription to that product and the
    latest release: one query, the same statement whether or not anything is found.

    Written as SQL, built once: the ORM spent about 6 ms of CPU building this five-part query
    on every check (measured in process), several times what PostgreSQL takes to run it, on
    the path every paying member's loader calls. Only the columns the check reads are
    selected: a full user row costs more to build, and would make a found key measurably
    slower to refuse than an unknown one."""
    with connection.cursor() as cursor:
        cursor.execute(_key_lookup_sql(), {"lookup": lookup, "published": True})
        row = cursor.fetchone()
    if row is None:
        return KeyLookup(None, None, None, None)
    (key_id, status, product_id, slug, product_active, owner_id, username, owner_active,
     sub_id, sub_expires_at, sub_hwid, latest_version, latest_sha256) = row
    product = _loaded(Product(pk=product_id, slug=slug, is_active=product_active))
    owner = None
    if owner_id is not None:
        owner = _loaded(User(pk=owner_id, username=username, is_active=owner_active))
    licence = _loaded(LicenseKey(pk=key_id, status=status, product=product, redeemed_by=owner))
    subscription = None
    if sub_id is not None:  # a subscription was found, so the key has an owner
        subscription = _loaded(Subscription(
            pk=sub_id, user_id=owner_id, product_id=product_id,
            expires_at=aware_datetime(sub_expires_at), hwid_digest=sub_hwid))
    return KeyLookup(licence, subscription, latest_version, latest_sha256)


@lru_cache(maxsize=1)
def _key_lookup_sql() -> str:
    key, product, user = LicenseKey._meta.db_table, Product._meta.db_table, User._meta.db_table
    subscription, release = Subscription._meta.db_table, LoaderRelease._meta.db_table
    # Only table names from the models are interpolated; the values are parameters.
    latest = (f"(SELECT r.{{}} FROM {release} r WHERE r.published = %(published)s "  # noqa: S608
              f"ORDER BY r.created_at DESC, r.id DESC LIMIT 1)")
    return (
        f"SELECT k.id, k.status, k.product_id, p.slug, p.is_active, k.redeemed_by_id, "  # noqa: S608
        f"u.username, u.is_active, s.id, s.expires_at, s.hwid_digest, "
        f"{latest.format('version')}, {latest.format('sha256')} "
        f"FROM {key} k JOIN {product} p ON p.id = k.product_id "
        f"LEFT JOIN {user} u ON u.id = k.redeemed_by_id "
        f"LEFT JOIN {subscription} s ON s.user_id = k.redeemed_by_id "
        f"AND s.product_id = k.product_id "
        f"WHERE k.code_digest = %(lookup)s LIMIT 1"
    )



def _loaded(instance: M) -> M:
    instance._state.adding = False  # a row that exists, as if loaded by the ORM
    instance._state.db = "default"
    return instance



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
