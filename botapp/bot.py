"""The bot: intents, guild-scoped slash commands, cogs, and the start-up checks."""

from __future__ import annotations

import logging

import nextcord
from nextcord.ext import commands

from botapp.api_client import BotApiClient, BotApiError
from botapp.checks import StartupReport, check_guild, check_intents
from botapp.cogs.keys import Keys
from botapp.cogs.linking import Linking
from botapp.cogs.members import ManagedRoles, Members
from botapp.cogs.moderation import Moderation
from botapp.cogs.stats import StatsCog
from botapp.link_watch import LinkWatcher
from botapp.settings import BotSettings

logger = logging.getLogger(__name__)


def bot_intents() -> nextcord.Intents:
    # Only what is used: guilds (roles, the bot's own member) and the privileged
    # GUILD_MEMBERS (joins and role edits). Slash commands need no message content.
    intents = nextcord.Intents.none()
    intents.guilds = True
    intents.members = True
    return intents


class ZspbBot(commands.Bot):
    def __init__(self, settings: BotSettings, api: BotApiClient | None = None) -> None:
        super().__init__(
            intents=bot_intents(),
            # Commands without guild_ids go to this guild only: guild commands appear at
            # once, and nextcord syncs them when the guild becomes available.
            default_guild_ids=[settings.guild_id],
            # Replies echo user text (ban reasons, names): none of it may ping anyone.
            allowed_mentions=nextcord.AllowedMentions.none(),
        )
        self.settings = settings
        self.api = api or BotApiClient(settings.api_base, settings.api_token,
                                       timeout=settings.api_timeout)
        self.managed = ManagedRoles()
        self.link_watcher = LinkWatcher(self.api)
        self.add_cog(Linking(self.api, self.link_watcher, site_url=settings.site_url))
        self.add_cog(Keys(self.api))
        self.add_cog(Moderation(self.api))
        self.add_cog(StatsCog(self.api))
        self.add_cog(Members(self.api, self.managed, guild_id=settings.guild_id))

    async def on_ready(self) -> None:
        # on_ready fires again after a reconnect that could not resume: checking again is
        # cheap and catches roles moved meanwhile.
        logger.info("connected as %s (%s)", self.user, getattr(self.user, "id", "?"))
        self.link_watcher.start()
        (await self.startup_report()).log()

    async def startup_report(self) -> StartupReport:
        report = StartupReport(problems=check_intents(self.intents))
        guild = self.get_guild(self.settings.guild_id)
        if guild is None:
            report.problems.append(
                f"the bot is not in the server {self.settings.guild_id} (DISCORD_GUILD_ID): "
                "invite it with the bot and applications.commands scopes"
            )
            return report
        me = guild.me
        try:
            # The bot's own id is never linked, so this answers just the managed role ids.
            roles = await self.api.member_roles(me.id)
        except BotApiError as exc:
            report.problems.append(f"cannot read the managed roles from the site ({exc}); "
                                   "the role hierarchy was not checked")
            return report
        self.managed.remember(roles.managed)
        found = check_guild(guild, roles.managed)
        report.problems.extend(found.problems)
        report.unmanageable.update(found.unmanageable)
        return report

    async def close(self) -> None:
        await self.link_watcher.stop()
        await self.api.close()
        await super().close()
