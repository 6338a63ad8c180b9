"""Member events: the bot tells the site what it saw; the site's role sync does the rest.

The site's drain is the one writer of Discord roles. The bot reports joins and role edits
touching a managed role; the site queues a role sync for a linked member (or strips the
managed roles of an unlinked one), which converges them. The site's own role edits come back
here as member updates and are reported like any other: the sync they queue finds the roles
already right and changes nothing, so there is no loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

from nextcord.ext import commands

from botapp.api_client import BotApiClient, BotApiError

logger = logging.getLogger(__name__)

# The managed set changes only when staff edit roles or products; reusing it briefly spares an
# API call for role edits that cannot concern the site (reaction roles, other bots).
MANAGED_TTL_SECONDS = 300.0


def role_ids(roles: Iterable[Any]) -> set[int]:
    return {int(role.id) for role in roles}


class ManagedRoles:
    """The role ids the site manages, as last read from it, for `ttl` seconds."""

    def __init__(self, ttl: float = MANAGED_TTL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._ids: frozenset[int] | None = None
        self._until = 0.0

    def remember(self, ids: frozenset[int]) -> None:
        self._ids = ids
        self._until = self._clock() + self._ttl

    def current(self) -> frozenset[int] | None:
        """None when never read or too old to trust."""
        return self._ids if self._clock() < self._until else None


class Members(commands.Cog):
    def __init__(self, api: BotApiClient, managed: ManagedRoles, *, guild_id: int) -> None:
        self.api = api
        self.managed = managed
        self.guild_id = guild_id

    def _ours(self, member: Any) -> bool:
        # Other guilds are not the site's; bots cannot hold a site account.
        return int(member.guild.id) == self.guild_id and not member.bot

    async def _report(self, member_id: int, event: Literal["join", "update"]) -> None:
        try:
            await self.api.member_event(member_id, event)
        except BotApiError as exc:
            # The site's periodic reconcile repairs what a lost report leaves wrong.
            logger.warning("could not report %s of member %s to the site: %s",
                           event, member_id, exc)

    async def _concerns_site(self, member_id: int, changed: set[int]) -> bool:
        managed = self.managed.current()
        if managed is None:
            try:
                managed = (await self.api.member_roles(member_id)).managed
            except BotApiError as exc:
                logger.warning("cannot read the managed roles: %s", exc)
                return True  # the report is refused the same way or lets the site decide
            self.managed.remember(managed)
        return bool(changed & managed)

    @commands.Cog.listener()
    async def on_member_join(self, member: Any) -> None:
        if not self._ours(member):
            return
        # Always: the site keeps a linked user's sync pending until they are in the guild.
        await self._report(int(member.id), "join")

    @commands.Cog.listener()
    async def on_member_update(self, before: Any, after: Any) -> None:
        if not self._ours(after):
            return
        old, new = role_ids(before.roles), role_ids(after.roles)
        if old == new:
            return  # nickname, avatar, timeout...: nothing the site mirrors
        if await self._concerns_site(int(after.id), old ^ new):
            await self._report(int(after.id), "update")
