from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from core.crypto import digest, normalize_code
from core.db import advisory_xact_lock
from core.errors import Conflict, InvalidInput, InviteInvalid, RegistrationLimited
from core.models import Invite, Role, User
from core.services.access import ensure_can_grant, ensure_capability, ensure_outranks
from core.services.invites import INVITE_BODY_LEN, INVITE_PREFIX, invite_code_digest
from core.services.logs import Category, log_event
from core.services.rolesync import role_sync_request

USERNAME_MAX = 32


def _validate_username(username: str) -> str:
    username = username.strip()
    if not 3 <= len(username) <= USERNAME_MAX or not all(
        ch.isalnum() or ch in "._-" for ch in username
    ):
        raise InvalidInput(
            "Username must be 3-32 letters, digits, dots, dashes or underscores.",
            fields={"username": "invalid"},
        )
    return username


def user_register(
    *,
    invite_code: str,
    username: str,
    password: str,
    ip: str,
    email: str = "",
    now: datetime | None = None,
) -> User:
    """Create an account from a valid invite; the invite is consumed exactly once.

    One account per registration IP within the configured window; the IP is kept as a keyed
    digest (for this check) and encrypted (for staff).
    """
    now = now or timezone.now()
    username = _validate_username(username)
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise InvalidInput("Enter a valid e-mail address.",
                               fields={"email": "invalid"}) from None
    candidate = User(username=username, email=email)
    try:
        validate_password(password, user=candidate)
    except ValidationError as exc:
        raise InvalidInput("Password is too weak.", fields={"password": exc.messages}) from None
    body = normalize_code(invite_code, body_len=INVITE_BODY_LEN, prefix=INVITE_PREFIX)
    ip_digest = digest(ip, purpose="ip")
    window_hours = settings.ZSPB.registration_ip_window_hours

    with transaction.atomic():
        invite = None
        if body is not None:
            invite = (
                Invite.objects.select_for_update(of=("self",))
                .select_related("created_by")
                .filter(code_digest=invite_code_digest(body))
                .first()
            )
        if invite is None or not invite.is_usable(now) or not invite.created_by.is_active:
            raise InviteInvalid()
        if window_hours:
            advisory_xact_lock(f"register-ip:{ip_digest}")
            recent = User.objects.filter(
                registration_ip_digest=ip_digest,
                date_joined__gte=now - timedelta(hours=window_hours),
            ).exists()
            if recent:
                raise RegistrationLimited(window_hours=window_hours)
        if User.objects.filter(username__iexact=username).exists():
            raise Conflict("This username is taken.", fields={"username": "taken"})
        user = User(
            username=username,
            email=email,
            role=Role.objects.get(key=settings.ZSPB.default_role),
            invited_by=invite.created_by,
            registration_ip_digest=ip_digest,
            registration_ip=ip,
            date_joined=now,
        )
        user.set_password(password)
        try:
            with transaction.atomic():
                user.save()
        except IntegrityError:
            raise Conflict("This username is taken.", fields={"username": "taken"}) from None
        invite.status = Invite.Status.USED
        invite.used_by = user
        invite.used_at = now
        invite.save(update_fields=["status", "used_by", "used_at"])
        log_event(category=Category.USER, action="user.register", actor=user,
                  target=invite.created_by, data={"invite_id": invite.pk}, ip=ip)
    return user


def user_set_role(*, actor: User, user: User, role: Role) -> User:
    ensure_capability(actor, "manage_users")
    with transaction.atomic():
        target = User.objects.select_for_update(of=("self",)).select_related("role").get(
            pk=user.pk
        )
        ensure_outranks(actor, target)
        ensure_can_grant(actor, role)
        previous = target.role.key if target.role else None
        target.role = role
        target.is_staff = role.staff
        target.save(update_fields=["role", "is_staff"])
        role_sync_request(user_id=target.pk, reason="role")
        log_event(category=Category.MODERATION, action="user.set_role", actor=actor,
                  target=target, data={"from": previous, "to": role.key})
    return target


def user_end_sessions(*, actor: User, user: User) -> None:
    """Log the user out everywhere at once (the session hash includes session_epoch)."""
    if actor.pk != user.pk:
        ensure_capability(actor, "manage_users")
        ensure_outranks(actor, user)
    User.objects.filter(pk=user.pk).update(session_epoch=F("session_epoch") + 1)
    category = Category.USER if actor.pk == user.pk else Category.MODERATION
    log_event(category=category, action="user.end_sessions", actor=actor, target=user)


def admin_bootstrap(*, username: str, password: str | None) -> tuple[User, str | None]:
    """Create the first administrator if no user holds the admin role yet.

    Returns the user and the generated password (None when given or already existing).
    """
    admin_role = Role.objects.get(key=settings.ZSPB.admin_role)
    existing = User.objects.filter(role=admin_role).order_by("pk").first()
    if existing is not None:
        return existing, None
    if User.objects.filter(username__iexact=username).exists():
        raise Conflict(
            f"A user named {username!r} exists without the {admin_role.name} role; "
            "set ZSPB_ADMIN_USERNAME to another name."
        )
    generated = None
    if not password:
        generated = password = secrets.token_urlsafe(12)
    user = User(username=username, role=admin_role, is_staff=True, is_superuser=True)
    user.set_password(password)
    user.save()
    log_event(category=Category.MODERATION, action="user.bootstrap_admin", target=user)
    return user, generated

