from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from core.crypto import digest, random_code
from core.errors import InviteNotRevocable, InviteQuotaExceeded, InvitingDisabled, NotFound
from core.models import Invite, User
from core.selectors.invites import invite_quota, invites_counted_this_month
from core.services.access import ensure_active, ensure_capability
from core.services.logs import Category, log_event

INVITE_PREFIX = "INV"
INVITE_GROUPS = 4  # 20 characters of base32: 100 random bits
INVITE_BODY_LEN = INVITE_GROUPS * 5


def invite_code_digest(normalized: str) -> str:
    return digest(normalized, purpose="invite")


def invite_create(*, creator: User, now: datetime | None = None) -> Invite:
    """Create a single-use invite within the creator's monthly quota.

    The creator's row is locked so that concurrent requests count the quota one at a time; the
    role is re-read inside the lock, so a quota edited in the admin applies immediately.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = (
            User.objects.select_for_update(of=("self",)).select_related("role").get(pk=creator.pk)
        )
        ensure_active(locked)
        if not locked.can_invite:
            raise InvitingDisabled()
        quota = invite_quota(user=locked)
        if quota is not None:
            used = invites_counted_this_month(user=locked, now=now)
            if used >= quota:
                raise InviteQuotaExceeded(quota=quota, used=used)
        body = random_code(INVITE_GROUPS)
        invite = Invite.objects.create(
            code_digest=invite_code_digest(body.replace("-", "")),
            code=f"{INVITE_PREFIX}-{body}",
            created_by=locked,
            created_at=now,
            expires_at=now + timedelta(days=settings.ZSPB.invite_expiry_days),
        )
        log_event(category=Category.USER, action="invite.create", actor=locked,
                  data={"invite_id": invite.pk, "expires_at": invite.expires_at.isoformat()})
    return invite


def invite_revoke(*, actor: User, invite_id: int) -> Invite:
    """Revoke an unused invite; it no longer counts towards the monthly quota.

    The creator may revoke their own invites; staff who manage users may revoke anyone's.
    """
    with transaction.atomic():
        invite = Invite.objects.select_for_update().filter(pk=invite_id).first()
        if invite is None:
            raise NotFound(_("Invite not found."))
        if invite.created_by_id != actor.pk:
            ensure_capability(actor, "manage_users")
        else:
            ensure_active(actor)
        if invite.status != Invite.Status.ACTIVE:
            raise InviteNotRevocable(status=invite.status)
        invite.status = Invite.Status.REVOKED
        invite.revoked_at = timezone.now()
        invite.save(update_fields=["status", "revoked_at"])
        category = Category.USER if invite.created_by_id == actor.pk else Category.MODERATION
        log_event(category=category, action="invite.revoke", actor=actor,
                  data={"invite_id": invite.pk, "creator_id": invite.created_by_id})
    return invite
