from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from core.errors import AlreadyBanned, InvalidInput, NotBanned
from core.models import Ban, User
from core.services.access import ensure_capability, ensure_outranks
from core.services.logs import Category, log_event
from core.services.realtime import member_notify
from core.services.rolesync import role_sync_request

REASON_MAX = 500


def _close_lapsed(*, user: User, now: datetime) -> None:
    """A timed ban whose end has passed is closed at its end time."""
    Ban.objects.elapsed(now).filter(user=user).update(
        lifted_at=F("ends_at")
    )


def ban_create(
    *, actor: User, user: User, reason: str, ends_at: datetime | None = None
) -> Ban:
    """Ban a user: they cannot log in, and every session they have ends at once."""
    ensure_capability(actor, "ban_users")
    reason = reason.strip()
    if not reason or len(reason) > REASON_MAX:
        raise InvalidInput(_("A reason of 1-%(max)s characters is required.") % {"max": REASON_MAX},
                           fields={"reason": "invalid"})
    now = timezone.now()
    if ends_at is not None and ends_at <= now:
        raise InvalidInput(_("The ban must end in the future."), fields={"ends_at": "past"})
    with transaction.atomic():
        target = User.objects.select_for_update(of=("self",)).select_related("role").get(
            pk=user.pk
        )
        ensure_outranks(actor, target)
        _close_lapsed(user=target, now=now)
        if Ban.objects.open().filter(user=target).exists():
            raise AlreadyBanned()
        ban = Ban.objects.create(user=target, reason=reason, author=actor, created_at=now,
                                 ends_at=ends_at)
        User.objects.filter(pk=target.pk).update(
            is_active=False, session_epoch=F("session_epoch") + 1
        )
        role_sync_request(user_id=target.pk, reason="ban")
        log_event(category=Category.MODERATION, action="user.ban", actor=actor, target=target,
                  data={"reason": reason, "ends_at": ends_at.isoformat() if ends_at else None})
        member_notify(user_id=target.pk, event="banned",
                      data={"reason": reason, "ends_at": ends_at.isoformat() if ends_at else None})
    return ban


def ban_lift(*, actor: User, user: User) -> Ban:
    ensure_capability(actor, "ban_users")
    now = timezone.now()
    with transaction.atomic():
        target = User.objects.select_for_update(of=("self",)).select_related("role").get(
            pk=user.pk
        )
        ensure_outranks(actor, target)
        ban = Ban.objects.open().filter(user=target).first()
        if ban is None:
            raise NotBanned()
        ban.lifted_at = now
        ban.lifted_by = actor
        ban.save(update_fields=["lifted_at", "lifted_by"])
        User.objects.filter(pk=target.pk).update(is_active=True)
        role_sync_request(user_id=target.pk, reason="unban")
        log_event(category=Category.MODERATION, action="user.unban", actor=actor, target=target,
                  data={"ban_id": ban.pk})
    return ban


def bans_expire_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """Reactivate users whose timed ban has ended. Idempotent; run by the scheduler."""
    now = now or timezone.now()
    due = list(
        Ban.objects.elapsed(now).values_list("pk", flat=True)[:limit]
    )
    lifted = 0
    for ban_id in due:
        with transaction.atomic():
            ban = (
                Ban.objects.elapsed(now).select_for_update()
                .filter(pk=ban_id)
                .select_related("user")
                .first()
            )
            if ban is None:
                continue
            ban.lifted_at = ban.ends_at
            ban.save(update_fields=["lifted_at"])
            User.objects.filter(pk=ban.user_id).update(is_active=True)
            role_sync_request(user_id=ban.user_id, reason="ban_expired")
            log_event(category=Category.MODERATION, action="user.ban_expired", target=ban.user,
                      data={"ban_id": ban.pk})
            lifted += 1
    return lifted
