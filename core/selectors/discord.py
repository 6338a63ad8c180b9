"""Discord-facing reads: who a Discord id is, and which managed roles a member should hold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from core.models import Ban, Product, Role, Subscription, User

# Snowflakes are unsigned 64-bit in Discord but stored in a signed BIGINT; a larger value
# cannot belong to anyone and must not reach the database (it would overflow there).
SNOWFLAKE_MAX = 2**63 - 1


@dataclass(frozen=True)
class MemberRoles:
    discord_id: int
    linked: bool
    wanted: frozenset[int]
    managed: frozenset[int]


def user_by_discord_id(*, discord_id: int) -> User | None:
    if not 1 <= discord_id <= SNOWFLAKE_MAX:
        return None
    return User.objects.select_related("role").filter(discord_id=discord_id).first()


def _is_banned(*, user: User, now: datetime) -> bool:
    if not user.is_active:
        return True
    # An open ban that has not lapsed, even if is_active was not flipped (defence in depth).
    return Ban.objects.active(now).filter(user_id=user.pk).exists()


def member_wanted_roles(*, user: User, now: datetime | None = None) -> set[int]:
    """The Discord role ids the user should hold: a pure function of site state.

    The role's Discord role plus the Discord role of every active product with an active
    subscription; nothing while banned. At most three queries whatever the data size.
    """
    now = now or timezone.now()
    if _is_banned(user=user, now=now):
        return set()
    wanted: set[int] = set()
    if user.role_id is not None:
        role = user.role  # one query unless the caller selected it already
        if role is not None and role.discord_role_id is not None:
            wanted.add(role.discord_role_id)
    product_roles = Subscription.objects.active(now).filter(
        user_id=user.pk, product__is_active=True, product__discord_role_id__isnull=False
    ).values_list("product__discord_role_id", flat=True)
    wanted.update(role_id for role_id in product_roles if role_id is not None)
    return wanted


def members_wanted_roles(*, users: Sequence[User], now: datetime | None = None
                         ) -> dict[int, set[int]]:
    """member_wanted_roles of many users at once (user id -> role ids), in two queries
    whatever their number (the users' roles selected by the caller): the role-sync drain
    takes its members in batches."""
    now = now or timezone.now()
    ids = [user.pk for user in users]
    # As in _is_banned: an inactive account counts as banned.
    banned = {user.pk for user in users if not user.is_active}
    banned.update(Ban.objects.active(now).filter(user_id__in=ids).values_list("user_id",
                                                                             flat=True))
    wanted: dict[int, set[int]] = {user.pk: set() for user in users}
    for user in users:
        role = user.role if user.role_id is not None else None
        if user.pk not in banned and role is not None and role.discord_role_id is not None:
            wanted[user.pk].add(role.discord_role_id)
    products = Subscription.objects.active(now).filter(
        user_id__in=ids, product__is_active=True, product__discord_role_id__isnull=False
    ).values_list("user_id", "product__discord_role_id")
    for user_id, role_id in products:
        if user_id not in banned and role_id is not None:
            wanted[user_id].add(role_id)
    return wanted


def managed_role_ids() -> set[int]:
    """Every Discord role the site mirrors, hence the only ones the bot may add or remove."""
    # order_by(): the models' default ordering is not allowed inside a UNION on SQLite.
    roles = Role.objects.filter(discord_role_id__isnull=False).order_by().values_list(
        "discord_role_id", flat=True
    )
    products = Product.objects.filter(discord_role_id__isnull=False).order_by().values_list(
        "discord_role_id", flat=True
    )
    return {role_id for role_id in roles.union(products) if role_id is not None}


def member_roles(*, discord_id: int, now: datetime | None = None) -> MemberRoles:
    """What the bot needs to converge one guild member: wanted and managed role ids."""
    user = user_by_discord_id(discord_id=discord_id)
    wanted = member_wanted_roles(user=user, now=now) if user is not None else set()
    return MemberRoles(discord_id=discord_id, linked=user is not None,
                       wanted=frozenset(wanted), managed=frozenset(managed_role_ids()))
