from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from core.crypto import digest, normalize_code, random_code
from core.discord.rest import discord_enabled
from core.errors import (
    AccountAlreadyLinked,
    Conflict,
    DiscordAlreadyLinked,
    DiscordOff,
    LinkCodeInvalid,
    NotLinked,
    ZspbError,
)
from core.models import DiscordLinkCode, User
from core.services.access import ensure_active
from core.services.logs import Category, log_event
from core.services.ratelimit import rate_limit, rate_limits
from core.services.realtime import member_notify
from core.services.rolesync import role_sync_request

LINK_CODE_GROUPS = 2
LINK_CODE_GROUP_LEN = 4  # XXXX-XXXX: 40 bits, short-lived, single use and throttled


def _code_digest(body: str) -> str:
    return digest(body, purpose="link")


def link_code_create(
    *, discord_id: int, discord_username: str = "", now: datetime | None = None
) -> str:
    """Issue a one-time code for a Discord account; any earlier pending code is voided.

    Only the digest is stored; the returned code is shown once to its owner.
    """
    now = now or timezone.now()
    holder = User.objects.filter(discord_id=discord_id).only("username").first()
    if holder is not None:
        raise DiscordAlreadyLinked(
            _("This Discord account is already linked to %(username)s.")
            % {"username": holder.username}
        )
    code = random_code(LINK_CODE_GROUPS, LINK_CODE_GROUP_LEN)
    try:
        with transaction.atomic():
            DiscordLinkCode.objects.filter(
                discord_id=discord_id, status=DiscordLinkCode.Status.PENDING
            ).update(status=DiscordLinkCode.Status.VOID)
            DiscordLinkCode.objects.create(
                discord_id=discord_id,
                discord_username=discord_username[:64],
                code_digest=_code_digest(code.replace("-", "")),
                created_at=now,
                expires_at=now + timedelta(minutes=settings.ZSPB.link_code_ttl_minutes),
            )
    except IntegrityError:
        # Two /code commands raced; the other one's code stands.
        raise Conflict(_("Another code was just issued; run /code again.")) from None
    log_event(category=Category.USER, action="discord.code_issued",
              data={"discord_id": str(discord_id), "discord_username": discord_username[:64]})
    return code


def link_code_consume(*, user: User, code: str, ip: str | None = None) -> User:
    """Link the user's account to the Discord account that requested the code.

    Refusals are journaled after the transaction rolled back, so the entry survives. A web
    request passes its client address and is throttled per address and account.
    """
    if ip is not None:
        rate_limits(checks=[("link_ip", ip), ("link_account", str(user.pk))])
    try:
        return _consume(user=user, code=code, ip=ip)
    except ZspbError as exc:
        log_event(category=Category.USER, action="discord.link_failed", actor=user,
                  data={"reason": exc.code}, ip=ip)
        raise


def _consume(*, user: User, code: str, ip: str | None) -> User:
    body = normalize_code(code, body_len=LINK_CODE_GROUPS * LINK_CODE_GROUP_LEN)
    if body is None:
        raise LinkCodeInvalid()
    now = timezone.now()
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        ensure_active(locked)
        claimed = DiscordLinkCode.objects.filter(
            code_digest=_code_digest(body),
            status=DiscordLinkCode.Status.PENDING,
            expires_at__gt=now,
        ).update(status=DiscordLinkCode.Status.USED, used_by=locked, used_at=now)
        if claimed != 1:
            raise LinkCodeInvalid()
        link = DiscordLinkCode.objects.get(code_digest=_code_digest(body))
        if locked.discord_id is not None and locked.discord_id != link.discord_id:
            raise AccountAlreadyLinked()
        if User.objects.filter(discord_id=link.discord_id).exclude(pk=locked.pk).exists():
            raise DiscordAlreadyLinked()
        locked.discord_id = link.discord_id
        locked.discord_username = link.discord_username
        locked.discord_linked_at = now
        try:
            with transaction.atomic():
                locked.save(update_fields=["discord_id", "discord_username", "discord_linked_at"])
        except IntegrityError:
            raise DiscordAlreadyLinked() from None
        role_sync_request(user_id=locked.pk, reason="link")
        log_event(category=Category.USER, action="discord.link", actor=locked,
                  data={"discord_id": str(link.discord_id)}, ip=ip)
        member_notify(user_id=locked.pk, event="discord_linked",
                      data={"discord_username": locked.discord_username})
    return locked


def discord_unlink(*, user: User) -> None:
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        if locked.discord_id is None:
            raise NotLinked()
        previous = locked.discord_id
        locked.discord_id = None
        locked.discord_username = ""
        locked.discord_linked_at = None
        locked.save(update_fields=["discord_id", "discord_username", "discord_linked_at"])
        # The unlinked Discord member must lose the managed roles; the drain needs the old id.
        role_sync_request(user_id=locked.pk, reason=f"unlink:{previous}")
        log_event(category=Category.USER, action="discord.unlink", actor=locked,
                  data={"discord_id": str(previous)})
        member_notify(user_id=locked.pk, event="discord_unlinked")


def discord_roles_resync(*, user: User) -> None:
    """The member asks for their Discord roles to be put back (after someone edited them by
    hand): a role sync is queued, as staff's "resync" does. Throttled per account."""
    if not discord_enabled():
        raise DiscordOff()
    if user.discord_id is None:
        raise NotLinked()
    rate_limit(scope="resync_account", ident=str(user.pk))
    with transaction.atomic():
        role_sync_request(user_id=user.pk, reason="member_resync")
        log_event(category=Category.USER, action="discord.resync", actor=user)
