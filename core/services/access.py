"""Rank and capability rules shared by every service that acts on someone."""

from __future__ import annotations

from django.utils.translation import gettext as _

from core.errors import PermissionDenied, RankViolation, TwoFactorRequired, UserBanned
from core.models import Role, User


def ensure_active(user: User) -> None:
    if not user.is_active:
        raise UserBanned()


def ensure_capability(actor: User, capability: str) -> None:
    ensure_active(actor)
    if not actor.has_capability(capability):
        raise PermissionDenied()
    ensure_second_factor(actor)


def ensure_second_factor(actor: User) -> None:
    """A staff capability used from a web session needs the session's verified second factor.

    django-otp's OTPMiddleware puts is_verified() on request.user, so only an actor that came
    from a web request carries it; the bot (acting for a Discord id) and tasks load their
    actor from the database and are not sessions. The admin asks for TOTP before any page, so
    this matters for the API and the pages.
    """
    check = getattr(actor, "is_verified", None)
    if check is not None and not check():
        raise TwoFactorRequired()


def ensure_outranks(actor: User, target: User) -> None:
    """Nobody acts on themselves through staff tools or on a user of equal or higher rank."""
    if actor.pk == target.pk:
        raise RankViolation(_("You cannot do this to your own account."))
    if not actor.can_act_on(target):
        raise RankViolation()


def ensure_can_grant(actor: User, role: Role) -> None:
    if not actor.can_grant(role):
        raise RankViolation(_("You can only grant roles ranked below your own."))
