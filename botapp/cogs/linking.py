"""/code: a one-time code that links the invoker's Discord account on the site."""

from __future__ import annotations

import nextcord
from nextcord.ext import commands

from botapp.api_client import BotApiClient
from botapp.link_watch import LinkWatcher
from botapp.replies import Answer, invoker_of, respond, timestamp


class Linking(commands.Cog):
    def __init__(self, api: BotApiClient, watcher: LinkWatcher, *, site_url: str) -> None:
        self.api = api
        self.watcher = watcher
        self.site_url = site_url

    @nextcord.slash_command(name="code",
                            description="Get a one-time code to link your Discord account")
    async def code(self, interaction: nextcord.Interaction) -> None:
        async def work() -> Answer:
            user = invoker_of(interaction)
            issued = await self.api.link_code(invoker=user.id, discord_username=user.name)
            self.watcher.watch(user=user, interaction=interaction, expires_at=issued.expires_at)
            return Answer(
                f"Your link code: **`{issued.code}`**\n"
                f"Enter it at {self.site_url}/discord (log in first). "
                f"It works once and expires {timestamp(issued.expires_at, 'R')}. "
                "Do not share it: whoever enters it gets this Discord account linked to theirs. "
                "I will confirm here once it is used."
            )

        await respond(interaction, "code", work)
