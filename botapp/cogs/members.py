"""Member events: keep managed roles equal to what the site wants, and tell the site.

A join gets the wanted roles at once. A role edit that is not the bot's own echo is checked
against the site and reverted where it drifted (a moderator adding a managed role by hand);
the site is told too, so its outbox converges the member as well, e.g. if the bot could not.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from nextcord.ext import commands

from botapp.api_client import BotApiClient, BotApiError
from botapp.roles import RoleConverger, role_ids

logger = logging.getLogger(__name__)

REASON_JOIN = "ZalypaSPB role sync: member joined"
REASON_REVERT = "ZalypaSPB role sync: managed roles follow the site"


class Members(commands.Cog):
    def __init__(self, api: BotApiClient, converger: RoleConverger, *, guild_id: int) -> None:
        self.api = api
        self.converger = converger
        self.guild_id = guild_id

    def _ours(self, member: Any) -> bool:
        # Other guilds are not the site's; bots cannot hold a site account.
        return int(member.guild.id) == self.guild_id and not member.bot

    async def _report(self, member_id: int, event: Literal["join", "update"]) -> None:
        try:
            await self.api.member_event(member_id, event)
        except BotApiError as exc:
            logger.warning("could not report %s of member %s to the site: %s",
                           event, member_id, exc)

    @commands.Cog.listener()
    async def on_member_join(self, member: Any) -> None:
        if not self._ours(member):
            return
        await self.converger.converge(member, reason=REASON_JOIN)
        # Always: the site keeps a linked user's sync pending until they are in the guild.
        await self._report(int(member.id), "join")

    @commands.Cog.listener()
    async def on_member_update(self, before: Any, after: Any) -> None:
        if not self._ours(after):
            return
        old, new = role_ids(before.roles), role_ids(after.roles)
        if old == new:
            return  # nickname, avatar, timeout...: nothing the site mirrors
        added, removed = new - old, old - new
        if self.converger.recent.consume_own(int(after.id), added, removed):
            return  # the echo of the bot's own edit
        if not self.converger.concerns_site(added | removed):
            return
        result = await self.converger.converge(after, reason=REASON_REVERT)
        # Only drift is worth the site's attention: reporting the echo of the site's own
        # role sync would queue a sync that finds nothing to do, after every sync.
        if result is not None and result.drift:
            await self._report(int(after.id), "update")
