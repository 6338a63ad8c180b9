"""The Discord bot's commands. The bot holds one shared token, so each command is authorised
with the site rights of the Discord user who invoked it, and throttled per that user.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from core.errors import InvokerNotLinked, NotFound, UserBanned
from core.models import Ban, Product, Subscription, User
from core.selectors.discord import MemberRoles, member_roles, user_by_discord_id
from core.selectors.stats import UserStats
from core.services.access import ensure_capability
from core.services.bans import ban_create, ban_lift
from core.services.discord_link import link_code_create
from core.services.keys import GeneratedKeys, key_redeem, keys_generate
from core.services.logs import Category, log_event
from core.services.ratelimit import rate_limit
from core.services.rolesync import member_strip_soon, role_sync_request
from core.services.stats import stats_user_for_viewer

TARGET_NOT_LINKED = gettext_noop("That Discord user has not linked a site account.")


@dataclass(frozen=True)
class IssuedLinkCode:
    code: str
    expires_at: datetime


def _throttle(*, discord_id: int, scope: str | None = None) -> None:
    rate_limit(scope="bot_discord", ident=str(discord_id))
    if scope is not None:
        rate_limit(scope=scope, ident=str(discord_id))


def bot_invoker(*, discord_id: int, scope: str | None = None) -> User:
    """The site account behind the invoking Discord user, throttled, linked and not banned."""
    _throttle(discord_id=discord_id, scope=scope)
    user = user_by_discord_id(discord_id=discord_id)
    if user is None:
        raise InvokerNotLinked()
    if not user.is_active:
        raise UserBanned()
    return user


def _target(discord_id: int) -> User:
    user = user_by_discord_id(discord_id=discord_id)
    if user is None:
        raise NotFound(_(TARGET_NOT_LINKED), discord_id=str(discord_id))
    return user


def bot_link_code_create(*, invoker_discord_id: int, discord_username: str) -> IssuedLinkCode:
    """/code: open to unlinked invokers, which is its purpose."""
    _throttle(discord_id=invoker_discord_id, scope="bot_code_discord")
    now = timezone.now()
    code = link_code_create(discord_id=invoker_discord_id, discord_username=discord_username,
                            now=now)
    return IssuedLinkCode(
        code=code, expires_at=now + timedelta(minutes=settings.ZSPB.link_code_ttl_minutes)
    )


def bot_key_redeem(*, invoker_discord_id: int, code: str) -> Subscription:
    """/redeem; key_redeem journals refused attempts itself."""
    user = bot_invoker(discord_id=invoker_discord_id, scope="bot_redeem_discord")
    return key_redeem(user=user, code=code)


def bot_keys_generate(
    *, invoker_discord_id: int, product_slug: str, duration_days: int, count: int,
    note: str = "",
) -> GeneratedKeys:
    actor = bot_invoker(discord_id=invoker_discord_id)
    # Checked before the product lookup too, so the answer does not tell who may not generate
    # keys which product slugs exist.
    ensure_capability(actor, "generate_keys")
    product = Product.objects.filter(slug=product_slug, is_active=True).first()
    if product is None:
        raise NotFound(_("No active product with the slug %(slug)s.")
                       % {"slug": repr(product_slug)},
                       product=product_slug)
    return keys_generate(actor=actor, product=product, duration=timedelta(days=duration_days),
                         count=count, note=note)


def bot_ban_create(
    *, invoker_discord_id: int, target_discord_id: int, reason: str,
    duration_hours: int | None = None,
) -> Ban:
    actor = bot_invoker(discord_id=invoker_discord_id)
    ensure_capability(actor, "ban_users")  # before revealing whether the target is linked
    target = _target(target_discord_id)
    ends_at = timezone.now() + timedelta(hours=duration_hours) if duration_hours else None
    return ban_create(actor=actor, user=target, reason=reason, ends_at=ends_at)


def bot_ban_lift(*, invoker_discord_id: int, target_discord_id: int) -> Ban:
    actor = bot_invoker(discord_id=invoker_discord_id)
    ensure_capability(actor, "ban_users")
    return ban_lift(actor=actor, user=_target(target_discord_id))


def bot_user_stats(*, invoker_discord_id: int, target_discord_id: int) -> UserStats:
    viewer = bot_invoker(discord_id=invoker_discord_id)
    if target_discord_id == invoker_discord_id:
        return stats_user_for_viewer(viewer=viewer, user_id=viewer.pk)
    ensure_capability(viewer, "view_any_stats")
    return stats_user_for_viewer(viewer=viewer, user_id=_target(target_discord_id).pk)


def bot_member_roles(*, discord_id: int, invoker_discord_id: int | None = None) -> MemberRoles:
    """The bot asks for itself (no invoker) when converging a member's roles."""
    if invoker_discord_id is not None:
        _throttle(discord_id=invoker_discord_id)
    return member_roles(discord_id=discord_id)


def bot_member_event(
    *, discord_id: int, event: str, invoker_discord_id: int | None = None
) -> bool:
    """Queue a role sync for a guild member who joined or whose roles changed (the bot reports
    both; the site's drain is the one writer of Discord roles).

    Returns whether a sync was queued for an account. A member without one holds no managed
    role: a task strips any they have (a moderator's hand-out, a re-join).
    """
    if invoker_discord_id is not None:
        _throttle(discord_id=invoker_discord_id)
    user = user_by_discord_id(discord_id=discord_id)
    if user is None:
        member_strip_soon(discord_id=discord_id, reason="not linked")
        return False
    role_sync_request(user_id=user.pk, reason=f"discord.{event}")
    # Member updates arrive for every nickname or role edit: journaling them would drown
    # the journal. A join is rare and worth a line.
    if event == "join":
        log_event(category=Category.USER, action="discord.member_join", target=user,
                  data={"discord_id": str(discord_id)})
    return True
