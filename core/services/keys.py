from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.crypto import digest, normalize_code, random_code
from core.errors import InvalidInput, KeyInvalid, KeyUnavailable, UserBanned
from core.models import LicenseKey, Product, Subscription, User
from core.services.access import ensure_capability
from core.services.logs import Category, log_event
from core.services.rolesync import role_sync_request

KEY_GROUPS = 4  # 4 x 5 base32 characters = 100 random bits
KEY_BODY_LEN = KEY_GROUPS * 5
INSERT_BATCH = 2000
MAX_DURATION = timedelta(days=3650)


@dataclass(frozen=True)
class GeneratedKeys:
    batch: uuid.UUID
    product: Product
    duration: timedelta
    codes: list[str]


def key_code_digest(body: str) -> str:
    return digest(body, purpose="key")


def _format_key(body_with_dashes: str) -> str:
    return f"{settings.ZSPB.key_prefix}-{body_with_dashes}"


def keys_generate(
    *,
    actor: User,
    product: Product,
    duration: timedelta,
    count: int,
    note: str = "",
    redeem_by: datetime | None = None,
) -> GeneratedKeys:
    """Create `count` free keys in one batch. Their clock starts only when redeemed.

    Inserted in chunks inside one transaction, so a failure leaves no half batch behind.
    """
    ensure_capability(actor, "generate_keys")
    limit = settings.ZSPB.key_batch_max
    if not 1 <= count <= limit:
        raise InvalidInput(f"Count must be between 1 and {limit}.", fields={"count": count})
    if not timedelta(minutes=1) <= duration <= MAX_DURATION:
        raise InvalidInput("Duration must be between one minute and ten years.",
                           fields={"duration": str(duration)})
    if redeem_by is not None and redeem_by <= timezone.now():
        raise InvalidInput("The redeem-by date must be in the future.",
                           fields={"redeem_by": redeem_by.isoformat()})
    if len(note) > 200:
        raise InvalidInput("The note is limited to 200 characters.", fields={"note": len(note)})

    batch = uuid.uuid4()
    now = timezone.now()
    codes: list[str] = []
    with transaction.atomic():
        for start in range(0, count, INSERT_BATCH):
            rows = []
            for _ in range(min(INSERT_BATCH, count - start)):
                body = random_code(KEY_GROUPS)
                code = _format_key(body)
                codes.append(code)
                rows.append(
                    LicenseKey(
                        code_digest=key_code_digest(body.replace("-", "")),
                        code=code,
                        product=product,
                        duration=duration,
                        batch=batch,
                        note=note,
                        redeem_by=redeem_by,
                        created_by=actor,
                        created_at=now,
                    )
                )
            LicenseKey.objects.bulk_create(rows)
        log_event(category=Category.MODERATION, action="keys.generate", actor=actor,
                  data={"batch": str(batch), "product": product.slug, "count": count,
                        "duration_seconds": int(duration.total_seconds()), "note": note})
    return GeneratedKeys(batch=batch, product=product, duration=duration, codes=codes)


def key_lookup_digest(code: str) -> str | None:
    """Digest of a typed key, or None when it cannot be a key at all (no query needed)."""
    body = normalize_code(code, body_len=KEY_BODY_LEN, prefix=settings.ZSPB.key_prefix)
    return key_code_digest(body) if body else None


def key_redeem(*, user: User, code: str, ip: str | None = None) -> Subscription:
    """Bind a free key to the user and start or extend that product's subscription.

    Exactly once: the status flip is a conditional UPDATE, so of concurrent attempts only one
    changes a row. The user's row is then locked so extensions of one subscription serialise.
    Refusals are journaled after the transaction rolled back, so the entry survives.
    """
    try:
        return _redeem(user=user, code=code, ip=ip)
    except (KeyInvalid, KeyUnavailable, UserBanned) as exc:
        log_event(category=Category.USER, action="key.redeem_failed", actor=user,
                  data={"reason": exc.code}, ip=ip)
        raise


def _redeem(*, user: User, code: str, ip: str | None) -> Subscription:
    lookup = key_lookup_digest(code)
    if lookup is None:
        raise KeyInvalid()
    now = timezone.now()
    with transaction.atomic():
        locked_user = User.objects.select_for_update().get(pk=user.pk)
        if not locked_user.is_active:
            raise UserBanned()
        key = LicenseKey.objects.select_related("product").filter(code_digest=lookup).first()
        if key is None:
            raise KeyInvalid()
        if key.status != LicenseKey.Status.FREE or (key.redeem_by and key.redeem_by <= now):
            raise KeyUnavailable()
        claimed = LicenseKey.objects.filter(pk=key.pk, status=LicenseKey.Status.FREE).update(
            status=LicenseKey.Status.REDEEMED, redeemed_by=locked_user, redeemed_at=now
        )
        if claimed != 1:
            raise KeyUnavailable()
        subscription = (
            Subscription.objects.select_for_update()
            .filter(user=locked_user, product=key.product)
            .first()
        )
        if subscription is None:
            subscription = Subscription.objects.create(
                user=locked_user, product=key.product, started_at=now,
                expires_at=now + key.duration,
            )
        else:
            if subscription.expires_at <= now:
                subscription.started_at = now
            subscription.expires_at = max(now, subscription.expires_at) + key.duration
            subscription.save(update_fields=["started_at", "expires_at", "updated_at"])
        role_sync_request(user_id=locked_user.pk, reason="redeem")
        log_event(category=Category.USER, action="key.redeem", actor=locked_user,
                  data={"key_id": key.pk, "product": key.product.slug,
                        "expires_at": subscription.expires_at.isoformat()}, ip=ip)
    return subscription
