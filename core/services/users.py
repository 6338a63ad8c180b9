from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from core.crypto import digest, normalize_code
from core.db import advisory_xact_lock
from core.errors import Conflict, InvalidInput, InviteInvalid, RegistrationLimited
from core.models import Invite, Role, User
from core.services.access import ensure_can_grant, ensure_capability, ensure_outranks
from core.services.invites import INVITE_BODY_LEN, INVITE_PREFIX, invite_code_digest
from core.services.logs import Category, log_event
from core.services.ratelimit import rate_limit
from core.services.realtime import member_notify
from core.services.rolesync import member_strip_soon, role_sync_request

USERNAME_MIN = 3
USERNAME_MAX = 32


def _validate_username(username: str) -> str:
    username = username.strip()
    if not USERNAME_MIN <= len(username) <= USERNAME_MAX or not all(
        ch.isalnum() or ch in "._-" for ch in username
    ):
        raise InvalidInput(
            _("Username must be 3-32 letters, digits, dots, dashes or underscores."),
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
    digest (for this check) and encrypted (for staff). Throttled per address.
    """
    rate_limit(scope="register_ip", ident=ip)
    now = now or timezone.now()
    username = _validate_username(username)
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise InvalidInput(_("Enter a valid e-mail address."),
                               fields={"email": "invalid"}) from None
    candidate = User(username=username, email=email)
    try:
        validate_password(password, user=candidate)
    except ValidationError as exc:
        raise InvalidInput(_("Password is too weak."), fields={"password": exc.messages}) from None
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
            raise Conflict(_("This username is taken."), fields={"username": "taken"})
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
            raise Conflict(_("This username is taken."), fields={"username": "taken"}) from None
        invite.status = Invite.Status.USED
        invite.used_by = user
        invite.used_at = now
        invite.save(update_fields=["status", "used_by", "used_at"])
        log_event(category=Category.USER, action="user.register", actor=user,
                  target=invite.created_by, data={"invite_id": invite.pk}, ip=ip)
        member_notify(user_id=invite.created_by_id, event="invite_used",
                      data={"username": user.username})
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
        member_notify(user_id=target.pk, event="role_changed", data={"role": role.name})
    return target


def user_end_sessions(*, actor: User, user: User) -> None:
    """Log the user out everywhere at once (the session hash includes session_epoch)."""
    if actor.pk != user.pk:
        ensure_capability(actor, "manage_users")
        ensure_outranks(actor, user)
    User.objects.filter(pk=user.pk).update(session_epoch=F("session_epoch") + 1)
    category = Category.USER if actor.pk == user.pk else Category.MODERATION
    log_event(category=category, action="user.end_sessions", actor=actor, target=user)
    member_notify(user_id=user.pk, event="sessions_ended")


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
            _("A user named %(username)s exists without the %(role)s role; "
              "set ZSPB_ADMIN_USERNAME to another name.")
            % {"username": repr(username), "role": admin_role.name}
        )
    generated = None
    if not password:
        generated = password = secrets.token_urlsafe(12)
    user = User(username=username, role=admin_role, is_staff=True, is_superuser=True)
    user.set_password(password)
    user.save()
    log_event(category=Category.MODERATION, action="user.bootstrap_admin", target=user)
    return user, generated



# Staff admin: account management. Every function checks the capability and the rank rules
# itself (the admin only parses input) and journals under moderation.

PROFILE_FIELDS = frozenset({"email", "first_name", "last_name", "can_invite"})


def _locked_target(user: User) -> User:
    return User.objects.select_for_update(of=("self",)).select_related("role").get(pk=user.pk)


def user_update_profile(*, actor: User, user: User, changes: dict[str, object]) -> User:
    """Edit the plain profile fields; role, staff flags and password have their own services."""
    ensure_capability(actor, "manage_users")
    unknown = set(changes) - PROFILE_FIELDS
    if unknown:
        raise InvalidInput(_("These fields cannot be edited here: %(fields)s.")
                           % {"fields": ", ".join(sorted(unknown))})
    email = changes.get("email")
    if isinstance(email, str) and email:
        try:
            validate_email(email)
        except ValidationError:
            raise InvalidInput(_("Enter a valid e-mail address."),
                               fields={"email": "invalid"}) from None
    with transaction.atomic():
        target = _locked_target(user)
        ensure_outranks(actor, target)
        diff = {name: [getattr(target, name), value] for name, value in changes.items()
                if getattr(target, name) != value}
        if not diff:
            return target
        for name, (_old, value) in diff.items():
            setattr(target, name, value)
        target.save(update_fields=list(diff))
        log_event(category=Category.MODERATION, action="user.update", actor=actor,
                  target=target, data={"changes": diff})
    return target


def user_set_password(*, actor: User, user: User, password: str) -> None:
    """Set another member's password (Admin); their sessions end with the old password."""
    ensure_capability(actor, "set_passwords")
    with transaction.atomic():
        target = _locked_target(user)
        ensure_outranks(actor, target)
        try:
            validate_password(password, user=target)
        except ValidationError as exc:
            raise InvalidInput(_("Password is too weak."),
                               fields={"password": exc.messages}) from None
        target.set_password(password)
        User.objects.filter(pk=target.pk).update(password=target.password,
                                                  session_epoch=F("session_epoch") + 1)
        # Never the password itself, only that it changed.
        log_event(category=Category.MODERATION, action="user.set_password", actor=actor,
                  target=target)
        member_notify(user_id=target.pk, event="sessions_ended")


def user_delete(*, actor: User, user: User) -> str:
    """Delete an account and what hangs off it (subscriptions, invites, devices).

    Journaled first, with the name and role, because the entry outlives the account (its
    target becomes NULL, the names stay). Returns the deleted username.
    """
    ensure_capability(actor, "delete_users")
    with transaction.atomic():
        target = _locked_target(user)
        ensure_outranks(actor, target)
        username = target.get_username()
        log_event(category=Category.MODERATION, action="user.delete", actor=actor,
                  target=target,
                  data={"user_id": target.pk, "username": username,
                        "role": target.role.key if target.role else None,
                        "discord_id": str(target.discord_id) if target.discord_id else None})
        if target.discord_id is not None:
            # The outbox row is deleted with the account; strip the Discord roles explicitly.
            member_strip_soon(discord_id=target.discord_id)
        target.delete()
    return username


def user_resync_discord(*, actor: User, user: User) -> None:
    """Queue a Discord role sync for the member (their roles are recomputed from the site)."""
    ensure_capability(actor, "manage_users")
    target = User.objects.select_related("role").get(pk=user.pk)
    ensure_outranks(actor, target)
    with transaction.atomic():
        role_sync_request(user_id=target.pk, reason="staff_resync")
        log_event(category=Category.MODERATION, action="user.resync_discord", actor=actor,
                  target=target)


def user_reset_hwid(*, actor: User, user: User) -> int:
    """Unbind the machine of every subscription of the member; returns how many were bound."""
    from core.models import Subscription
    from core.services.licensing import subscription_reset_hwid

    ensure_capability(actor, "manage_users")
    target = User.objects.select_related("role").get(pk=user.pk)
    ensure_outranks(actor, target)
    bound = 0
    with transaction.atomic():
        for sub_id, hwid in Subscription.objects.filter(user=target).values_list(
            "pk", "hwid_digest"
        ):
            subscription_reset_hwid(actor=actor, subscription_id=sub_id)
            bound += bool(hwid)
    return bound


# Invite branches: a member and everyone below them in the invite tree.

@dataclass(frozen=True)
class BranchResult:
    changed: int
    skipped: int
    unchanged: int
    truncated: bool


def invite_branch_disable(*, actor: User, root: User) -> BranchResult:
    """Stop the whole branch from creating invites (User.can_invite = False).

    Members the actor may not act on (equal or higher rank, the actor themselves) are
    skipped and counted; one journal entry records the counts.
    """
    from core.selectors.users import invite_branch_ids

    ensure_capability(actor, "manage_users")
    branch = invite_branch_ids(root_id=root.pk)
    with transaction.atomic():
        members = list(
            User.objects.select_for_update(of=("self",)).select_related("role")
            .filter(pk__in=branch.ids)
        )
        allowed = [m for m in members if actor.can_act_on(m)]
        to_change = [m.pk for m in allowed if m.can_invite]
        User.objects.filter(pk__in=to_change).update(can_invite=False)
        result = BranchResult(changed=len(to_change), skipped=len(members) - len(allowed),
                              unchanged=len(allowed) - len(to_change),
                              truncated=branch.truncated)
        log_event(category=Category.MODERATION, action="invites.branch_disable", actor=actor,
                  target=root, data={"changed": result.changed, "skipped": result.skipped,
                                     "unchanged": result.unchanged,
                                     "truncated": result.truncated})
    return result


def invite_branch_ban(
    *, actor: User, root: User, reason: str, ends_at: datetime | None = None
) -> BranchResult:
    """Ban the member and everyone below them, one ban (and journal entry) per member.

    Members the actor may not act on are skipped, already banned ones counted as unchanged;
    the bans are independent, so one refusal does not undo the others.
    """
    from core.errors import AlreadyBanned, RankViolation
    from core.selectors.users import invite_branch_ids
    from core.services.bans import ban_create

    ensure_capability(actor, "ban_users")
    branch = invite_branch_ids(root_id=root.pk)
    changed = skipped = unchanged = 0
    for member in User.objects.select_related("role").filter(pk__in=branch.ids).order_by("pk"):
        try:
            ban_create(actor=actor, user=member, reason=reason, ends_at=ends_at)
        except RankViolation:
            skipped += 1
        except AlreadyBanned:
            unchanged += 1
        else:
            changed += 1
    log_event(category=Category.MODERATION, action="users.branch_ban", actor=actor,
              target=root, data={"banned": changed, "skipped": skipped,
                                 "already_banned": unchanged, "truncated": branch.truncated})
    return BranchResult(changed=changed, skipped=skipped, unchanged=unchanged,
                        truncated=branch.truncated)


# A member's own account (the account page).

def user_change_password(*, user: User, old_password: str, new_password: str) -> User:
    """Change one's own password; every session of the member ends (the hash and the epoch
    change), so the caller re-keys the session that made the change if it should survive."""
    rate_limit(scope="password_account", ident=str(user.pk))
    with transaction.atomic():
        target = _locked_target(user)
        if not target.check_password(old_password):
            raise InvalidInput(_("The current password is not correct."),
                               fields={"old_password": _("The current password is not correct.")})
        try:
            validate_password(new_password, user=target)
        except ValidationError as exc:
            raise InvalidInput(_("Password is too weak."),
                               fields={"new_password": " ".join(exc.messages)}) from None
        target.set_password(new_password)
        target.session_epoch = F("session_epoch") + 1
        target.save(update_fields=["password", "session_epoch"])
        target.refresh_from_db(fields=["session_epoch"])
        log_event(category=Category.USER, action="user.change_password", actor=target)
        member_notify(user_id=target.pk, event="sessions_ended")
    return target
