"""At login: compare the member's Discord roles with the wanted ones, queue a sync on drift."""

from __future__ import annotations

import logging
import time

from django.core.cache import cache

from core.discord.rest import DiscordError, DiscordNotFound, discord_client, discord_enabled
from core.models import User
from core.selectors.discord import managed_role_ids, member_wanted_roles
from core.services.rolesync.drain import OUTAGE_KEY, halted, role_diff, settings_guild
from core.services.rolesync.outbox import role_sync_request

log = logging.getLogger("zspb.rolesync")

# Login checks must not hold up a login for long.
LOGIN_CHECK_TIMEOUT = 1.5


def member_roles_check(*, user: User, timeout: float = LOGIN_CHECK_TIMEOUT) -> bool:
    """At login: read the member's roles and queue a sync if they differ from the wanted set.

    Bounded by `timeout` and never raises: a login must not fail or hang because of Discord.
    Returns whether a sync was queued. When Discord cannot answer, a sync is queued anyway
    (cheap, and the drain finds out); a member not in the guild is synced when they join.
    """
    try:
        if not discord_enabled() or user.discord_id is None:
            return False
        if halted() or cache.get(OUTAGE_KEY):
            role_sync_request(user_id=user.pk, reason="login")
            return True
        deadline = time.monotonic() + timeout
        with discord_client(timeout=timeout, retries=0, max_wait=min(timeout, 0.5)) as client:
            member = client.member_get(guild_id=settings_guild(), user_id=user.discord_id,
                                       deadline=deadline)
        add, remove = role_diff(current=member.roles, wanted=member_wanted_roles(user=user),
                                managed=managed_role_ids())
        if not (add or remove):
            return False
        role_sync_request(user_id=user.pk, reason="login")
        return True
    except DiscordNotFound:
        return False
    except DiscordError as exc:
        log.info("login role check for user %s: %s; queueing a sync", user.pk, exc.summary())
        try:
            role_sync_request(user_id=user.pk, reason="login")
        except Exception:
            log.exception("could not queue a role sync at login")
            return False
        return True
    except Exception:
        log.exception("login role check for user %s failed", user.pk)
        return False
