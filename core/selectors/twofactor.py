from __future__ import annotations

from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.models import User


def twofactor_is_enrolled(*, user: User) -> bool:
    """Whether the user has a confirmed authenticator (otherwise the admin asks to enrol)."""
    return bool(TOTPDevice.objects.filter(user=user, confirmed=True).exists())


def twofactor_backup_codes_left(*, user: User) -> int:
    return int(StaticToken.objects.filter(device__user=user, device__confirmed=True).count())
