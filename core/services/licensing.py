"""The loader's licence check (signed answers, HWID binding) and the staff HWID reset.

Every answer, refusals included, is signed and names what it was asked about: the product, a
digest of the machine's HWID and of the key or account (see `binding_digest`), the nonce and the
time, so a loader can refuse an answer issued for another machine or licence. Every refusal has
the same shape and does the same work (the same queries), so neither its content nor its timing
tells an unknown key from a banned owner or a wrong machine; the reason is written to the user
journal only. Successes are counted per subscription and day (core.services.licence_counts);
only the one that binds a machine is journaled.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from core.crypto import digest
from core.errors import (
    InvalidInput,
    MachineNotBound,
    MachineResetCooldown,
    MachineResetDisabled,
    NotFound,
)
from core.models import LicenseKey, Subscription, User
from core.selectors.licensing import (
    KeyLookup,
    latest_release,
    license_key_by_digest,
    license_signing_key,
    product_and_subscription,
)
from core.services.access import ensure_capability
from core.services.keys import key_lookup_digest
from core.services.licence_counts import license_check_count
from core.services.logs import Category, log_event
from core.services.ratelimit import rate_limits_around
from core.services.subscriptions import subscription_lock_for_staff


@dataclass(frozen=True)
class LicenseAnswer:
    payload: str  # base64 of the canonical JSON bytes that were signed
    signature: str  # base64 of the 64-byte Ed25519 signature
    valid: bool


class _Refused(Exception):
    def __init__(self, reason: str, user: User | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.user = user


@dataclass(frozen=True)
class _Grant:
    user: User
    subscription: Subscription
    hwid_bound: bool
    # The latest release's version and checksum when the lookup read them, else None.
    latest: tuple[str | None, str | None] | None


# Bumped whenever the signed payload changes meaning; loaders refuse versions they do not know.
PAYLOAD_VERSION = 2


def hwid_digest(hwid: str) -> str:
    """The keyed digest stored on a subscription (the site never stores the HWID itself)."""
    return digest(hwid, purpose="hwid")


def binding_digest(kind: str, value: str) -> str:
    """Public digest naming, in a signed answer, the machine ("hwid"), key ("key") or account
    ("account") it was issued for: SHA-256 hex of "zspb-<kind>-v1:" + the value exactly as
    sent, UTF-8. Unkeyed on purpose: the loader recomputes it from what it sent (no secret)."""
    return hashlib.sha256(f"zspb-{kind}-v1:{value}".encode("utf-8", "surrogatepass")).hexdigest()


def canonical_json(body: dict[str, Any]) -> bytes:
    """The exact bytes that are signed: sorted keys, no spaces, ASCII only."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _signed(body: dict[str, Any]) -> LicenseAnswer:
    # Stamped when signing, after any slow password hash, so the client's skew check is fair.
    raw = canonical_json({**body, "timestamp": int(time.time())})
    signature = license_signing_key().sign(raw).signature
    return LicenseAnswer(payload=base64.b64encode(raw).decode("ascii"),
                         signature=base64.b64encode(signature).decode("ascii"),
                         valid=bool(body["valid"]))


def _user_by_key(
    found: KeyLookup, lookup: str | None, product: str
) -> tuple[User, Subscription | None, tuple[str | None, str | None]]:
    licence, subscription = found.licence, found.subscription
    if lookup is None:
        raise _Refused("key_malformed")
    if licence is None:
        raise _Refused("key_unknown")
    if licence.status == LicenseKey.Status.FREE:
        raise _Refused("key_not_redeemed")
    if licence.status != LicenseKey.Status.REDEEMED:
        raise _Refused("key_revoked")
    user = licence.redeemed_by
    if user is None:
        raise _Refused("key_owner_deleted")
    if licence.product.slug != product:
        raise _Refused("product_mismatch", user)
    if not user.is_active:
        raise _Refused("user_banned", user)
    if not licence.product.is_active:
        raise _Refused("product_inactive", user)
    return user, subscription, (found.latest_version, found.latest_sha256)


def _user_by_password(
    request: HttpRequest, username: str, password: str, product: str
) -> tuple[User, Subscription | None]:
    # Through authenticate() so django-axes counts failures and enforces its lock-out.
    user = authenticate(request=request, username=username, password=password)
    if user is None:
        if getattr(request, "axes_locked_out", False):
            raise _Refused("locked_out")
        inactive = User.objects.filter(username=username, is_active=False).first()
        if inactive is not None:
            raise _Refused("user_banned", inactive)
        raise _Refused("bad_credentials")
    if not isinstance(user, User):
        raise _Refused("bad_credentials")
    if not user.is_active:
        raise _Refused("user_banned", user)
    wanted, subscription = product_and_subscription(user_id=user.pk, product_slug=product)
    if wanted is None:
        raise _Refused("product_unknown", user)
    if subscription is not None and not wanted.is_active:
        raise _Refused("product_inactive", user)
    return user, subscription


def _bind_hwid(subscription: Subscription, wanted: str) -> bool:
    """Bind on first use; True when this call bound it. Raises _Refused on another machine.

    A conditional UPDATE: of two concurrent first checks from different machines exactly one
    finds the column still empty.
    """
    current = subscription.hwid_digest
    bound = False
    if not current:
        bound = Subscription.objects.filter(pk=subscription.pk, hwid_digest="").update(
            hwid_digest=wanted, updated_at=timezone.now()
        ) == 1
        current = wanted if bound else (
            Subscription.objects.filter(pk=subscription.pk)
            .values_list("hwid_digest", flat=True).first() or ""
        )
    if not hmac.compare_digest(current, wanted):
        raise _Refused("hwid_mismatch", subscription.user)
    return bound


def _evaluate(
    *, request: HttpRequest, product: str, hwid: str, found: KeyLookup | None,
    lookup: str | None, username: str | None, password: str | None,
) -> _Grant:
    stored_hwid = hwid_digest(hwid)  # before any refusal, so every path pays for it
    latest: tuple[str | None, str | None] | None = None
    if found is not None:
        user, subscription, latest = _user_by_key(found, lookup, product)
    else:
        assert username is not None and password is not None  # checked by license_check
        user, subscription = _user_by_password(request, username, password, product)
    if subscription is None:
        raise _Refused("no_subscription", user)
    subscription.user = user  # already loaded; spares a query when journaling a mismatch
    if not subscription.is_active:
        raise _Refused("subscription_expired", user)
    bound = _bind_hwid(subscription, stored_hwid)
    return _Grant(user=user, subscription=subscription, hwid_bound=bound, latest=latest)


def license_check(
    *,
    request: HttpRequest,
    ip: str,
    product: str,
    hwid: str,
    nonce: str,
    key: str | None = None,
    username: str | None = None,
    password: str | None = None,
) -> LicenseAnswer:
    """Check a licence by key or by account for `product` on machine `hwid`; sign the answer.

    Throttled per IP and per subject (key or username); a throttled call raises RateLimited
    rather than answering, which reveals nothing about the subject.
    """
    by_key = key is not None and username is None and password is None
    by_account = key is None and username is not None and password is not None
    if not (by_key or by_account):
        raise InvalidInput(_("Send either a key, or a username and a password."),
                           fields={"key": "exclusive", "username": "exclusive"})
    lookup = key_lookup_digest(key) if key is not None else None
    if key is not None:
        subject = f"key:{lookup or key.strip().upper()}"
    else:
        subject = f"user:{(username or '').lower()}"
    found: KeyLookup | None = None
    # The throttles count while the key is looked up (a read, so nothing stays of an attempt
    # they refuse): the check waits for one round trip instead of two. One query whatever the
    # outcome (a malformed key looks up "-"): a refusal that stopped before it, or after a
    # shorter one, would answer sooner than a wrong machine or a lapsed subscription.
    with rate_limits_around(checks=[("license_ip", ip), ("license_subject", subject)]):
        if key is not None:
            found = license_key_by_digest(lookup=lookup or "-")

    mode = "key" if by_key else "account"
    # What the answer is about, signed into every answer, refusals too: without it one bound
    # licence behind a relay could answer for any number of machines, and a recorded refusal
    # could be replayed against another machine.
    binding = {
        "v": PAYLOAD_VERSION,
        "nonce": nonce,
        "product": product,
        "hwid_digest": binding_digest("hwid", hwid),
        **({"key_digest": binding_digest("key", key)} if key is not None
           else {"account_digest": binding_digest("account", username or "")}),
    }
    try:
        grant = _evaluate(request=request, product=product, hwid=hwid, found=found,
                          lookup=lookup, username=username, password=password)
    except _Refused as refused:
        log_event(category=Category.USER, action="license.check_failed", actor=refused.user,
                  data={"reason": refused.reason, "mode": mode, "product": product[:50],
                        **({"username": (username or "")[:150]} if by_account else {})},
                  ip=ip)
        return _signed({**binding, "valid": False})
    subscription = grant.subscription
    # Successes are counted per subscription and day (one Redis round trip), not journaled one
    # row each: a journal INSERT per check made storage grow with traffic. The check that binds
    # a machine changes the licence, so it is still journaled (once per binding).
    license_check_count(subscription_id=subscription.pk)
    if grant.hwid_bound:
        log_event(category=Category.USER, action="license.check_ok", actor=grant.user,
                  data={"mode": mode, "product": product, "subscription_id": subscription.pk,
                        "hwid_bound": True}, ip=ip)
    # The loader learns the current release from the signed answer itself: a loader that checks
    # by key has no session to ask /loader/latest with, and a signed version cannot be spoofed.
    # The check by key read it with the key; the check by account asks now.
    if grant.latest is not None:
        latest_version, latest_sha256 = grant.latest
    else:
        release = latest_release()
        latest_version = release.version if release else None
        latest_sha256 = release.sha256 if release else None
    return _signed({
        **binding,
        "valid": True,
        "expires_at": subscription.expires_at.isoformat(),
        "username": grant.user.get_username(),
        "latest_version": latest_version,
        "latest_sha256": latest_sha256,
    })


def subscription_reset_hwid(*, actor: User, subscription_id: int) -> Subscription:
    """Forget the bound machine; the next licence check binds a new one."""
    ensure_capability(actor, "manage_users")
    with transaction.atomic():
        subscription = subscription_lock_for_staff(actor=actor, subscription_id=subscription_id)
        had_hwid = bool(subscription.hwid_digest)
        subscription.hwid_digest = ""
        subscription.save(update_fields=["hwid_digest", "updated_at"])
        log_event(category=Category.MODERATION, action="subscription.reset_hwid", actor=actor,
                  target=subscription.user,
                  data={"subscription_id": subscription.pk, "product": subscription.product.slug,
                        "had_hwid": had_hwid})
    return subscription


def hwid_self_reset_cooldown() -> timedelta | None:
    """How long a member waits between two self-resets; None when only staff may reset."""
    days = settings.ZSPB.hwid_self_reset_cooldown_days
    return timedelta(days=days) if days else None


def subscription_hwid_self_reset(*, user: User, product_slug: str) -> Subscription:
    """The member unbinds the machine of their own subscription (moving to a new computer),
    at most once per cooldown; the next licence check binds the new machine."""
    cooldown = hwid_self_reset_cooldown()
    if cooldown is None:
        raise MachineResetDisabled()
    now = timezone.now()
    with transaction.atomic():
        subscription = (Subscription.objects.select_for_update(of=("self",))
                        .select_related("product")
                        .filter(user=user, product__slug=product_slug).first())
        if subscription is None:
            raise NotFound(_("You have no subscription for this product."))
        if not subscription.hwid_digest:
            raise MachineNotBound()
        available_at = subscription.hwid_self_reset_available_at(cooldown, now=now)
        if available_at is not None:
            raise MachineResetCooldown(retry_at=available_at.isoformat())
        subscription.hwid_digest = ""
        subscription.hwid_self_reset_at = now
        subscription.save(update_fields=["hwid_digest", "hwid_self_reset_at", "updated_at"])
        log_event(category=Category.USER, action="subscription.self_reset_hwid", actor=user,
                  data={"subscription_id": subscription.pk,
                        "product": subscription.product.slug})
    return subscription
