"""Staff two-factor authentication (TOTP with single-use backup codes) on django-otp devices.

Every staff member must pass TOTP to enter the admin. Enrolment creates an unconfirmed TOTP
device (the QR code's secret), confirms it with a first token and issues backup codes once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.errors import Conflict, InvalidInput, PermissionDenied, RateLimited
from core.models import User
from core.services.access import ensure_active, ensure_capability, ensure_outranks
from core.services.logs import Category, log_event

BACKUP_CODE_COUNT = 10
TOTP_DEVICE_NAME = "Authenticator app"
BACKUP_DEVICE_NAME = "Backup codes"


@dataclass(frozen=True)
class Enrolment:
    device: TOTPDevice
    backup_codes: list[str]


def _ensure_staff(user: User) -> None:
    ensure_active(user)
    if not user.is_staff:
        raise PermissionDenied(_("Two-factor login is for staff accounts."))


def _clean_token(token: str) -> str:
    # Authenticator apps show "123 456"; backup codes may be typed with dashes or capitals.
    return "".join(ch for ch in token.strip().lower() if ch.isalnum())[:16]


def twofactor_start_enrolment(*, user: User) -> TOTPDevice:
    """The unconfirmed TOTP device whose secret the enrolment page shows.

    Reused across page loads, so a reload does not invalidate a QR code already scanned.
    """
    _ensure_staff(user)
    if TOTPDevice.objects.filter(user=user, confirmed=True).exists():
        raise Conflict(_("Two-factor login is already set up for this account."))
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=False)
    return device


def _seconds_left(info: dict[str, Any] | None) -> int:
    """Seconds until django-otp's throttle lets the device verify again (at least 1)."""
    locked_until = (info or {}).get("locked_until")
    if locked_until is None:
        return 1
    left: float = (locked_until - timezone.now()).total_seconds()
    return max(1, math.ceil(left))


def _throttled(seconds: int) -> RateLimited:
    # django-otp doubles the wait after each wrong code, so "a few seconds" may be minutes.
    return RateLimited(
        ngettext("Too many wrong codes; wait %(seconds)d second and try again.",
                 "Too many wrong codes; wait %(seconds)d seconds and try again.",
                 seconds) % {"seconds": seconds},
        retry_after=seconds,
    )


def _new_backup_codes(user: User) -> list[str]:
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name=BACKUP_DEVICE_NAME, confirmed=True)
    codes = [StaticToken.random_token() for _ in range(BACKUP_CODE_COUNT)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def twofactor_confirm_enrolment(*, user: User, token: str) -> Enrolment:
    """Confirm the pending TOTP device with a first token; returns the new backup codes."""
    _ensure_staff(user)
    with transaction.atomic():
        device = (
            TOTPDevice.objects.select_for_update()
            .filter(user=user, confirmed=False)
            .order_by("pk")
            .first()
        )
        if device is None:
            raise Conflict(_("Start the enrolment again: no pending authenticator was found."))
        allowed, info = device.verify_is_allowed()
        # A failed verify records its throttling state, so it must commit, not raise here.
        verified = allowed and device.verify_token(_clean_token(token))
        if verified:
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            TOTPDevice.objects.filter(user=user, confirmed=False).delete()
            codes = _new_backup_codes(user)
            log_event(category=Category.USER, action="staff.2fa_enrol", actor=user,
                      target=user, data={"backup_codes": len(codes)})
    if not allowed:
        raise _throttled(_seconds_left(info))
    if not verified:
        raise InvalidInput(_("That code is not valid. Check the clock of your phone and retry."),
                           fields={"token": "invalid"})
    return Enrolment(device=device, backup_codes=codes)


def twofactor_verify(*, user: User, token: str) -> Device:
    """The confirmed device (TOTP or backup code) that accepts `token`.

    Throttled per device by django-otp (delays double after each failure); a used backup
    code is deleted and journaled with the number left.
    """
    _ensure_staff(user)
    cleaned = _clean_token(token)
    wait = 0  # seconds until a throttled candidate may verify again
    matched: Device | None = None
    with transaction.atomic():
        candidates: list[Device] = [
            *TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True),
            *StaticDevice.objects.select_for_update().filter(user=user, confirmed=True),
        ]
        for device in candidates:
            # TOTP tokens are digits, backup codes are letters too: skip the other kind so a
            # code does not count as a failure on a device that could never accept it.
            if isinstance(device, TOTPDevice) != cleaned.isdigit():
                continue
            allowed, info = device.verify_is_allowed()
            if not allowed:
                wait = max(wait, _seconds_left(info))
                continue
            if device.verify_token(cleaned):
                matched = device
                break
        if isinstance(matched, StaticDevice):
            left = StaticToken.objects.filter(device=matched).count()
            log_event(category=Category.USER, action="staff.2fa_backup_code_used", actor=user,
                      target=user, data={"backup_codes_left": left})
    if matched is not None:
        return matched
    if not candidates:
        raise Conflict(_("Two-factor login is not set up for this account yet."))
    if wait:
        raise _throttled(wait)
    raise InvalidInput(_("That code is not valid."), fields={"token": "invalid"})


def twofactor_reset(*, actor: User, user: User) -> int:
    """Remove a staff member's authenticator and backup codes (lost phone).

    Their sessions lose the second factor at once (the device is gone) and their next admin
    visit asks them to enrol again. Admin only (set_passwords: credential management).
    Returns the number of devices removed.
    """
    ensure_capability(actor, "set_passwords")
    target = User.objects.select_related("role").get(pk=user.pk)
    ensure_outranks(actor, target)
    with transaction.atomic():
        removed = 0
        for model in (TOTPDevice, StaticDevice):
            _, per_model = model.objects.filter(user=target).delete()
            removed += per_model.get(model._meta.label, 0)
        log_event(category=Category.MODERATION, action="staff.2fa_reset", actor=actor,
                  target=target, data={"removed": removed})
    return removed
