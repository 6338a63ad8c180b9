"""Site login. Goes through django.contrib.auth.authenticate(request=...) so django-axes sees
every attempt (lock-out per username + IP)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate, login, logout
from django.http import HttpRequest

from core.errors import InvalidCredentials, LoginLocked, UserBanned
from core.models import Ban, User
from core.services.logs import Category, log_event
from core.services.ratelimit import rate_limit
from core.services.rolesync import member_roles_check


def user_login(*, request: HttpRequest, username: str, password: str, ip: str) -> User:
    rate_limit(scope="login_ip", ident=ip)
    user = authenticate(request=request, username=username, password=password)
    if getattr(request, "axes_locked_out", False):
        log_event(category=Category.USER, action="user.login_locked",
                  data={"username": username[:150]}, ip=ip)
        raise LoginLocked(retry_after=int(settings.AXES_COOLOFF_TIME.total_seconds()))
    if not isinstance(user, User):
        log_event(category=Category.USER, action="user.login_failed",
                  data={"username": username[:150]}, ip=ip)
        _refuse_if_banned(username=username, password=password)
        raise InvalidCredentials()
    login(request, user)
    log_event(category=Category.USER, action="user.login", actor=user, ip=ip)
    # Roles edited by hand in Discord are caught at the next login at the latest. Bounded by
    # a short timeout and never raises: Discord being down must not stop anyone logging in.
    member_roles_check(user=user)
    return user


def _refuse_if_banned(*, username: str, password: str) -> None:
    """A banned member who knows their password learns why they cannot log in (and until
    when); anyone else still gets the same "invalid username or password"."""
    user = User.objects.filter(username=username, is_active=False).first()
    if user is None or not user.check_password(password):
        return
    ban = Ban.objects.open().filter(user=user).order_by("-created_at").first()
    if ban is None:
        return
    raise UserBanned(reason=ban.reason,
                     ends_at=ban.ends_at.isoformat() if ban.ends_at else None)


def user_logout(*, request: HttpRequest, user: User) -> None:
    logout(request)
    log_event(category=Category.USER, action="user.logout", actor=user)
