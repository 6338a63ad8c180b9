"""/ban and /unban: the site decides who may (Support and above) and whom (rank rules)."""

from __future__ import annotations

import nextcord
from nextcord.ext import commands

from botapp.api_client import BotApiClient
from botapp.replies import Answer, escape, invoker_of, respond, timestamp


class Moderation(commands.Cog):
    def __init__(self, api: BotApiClient) -> None:
        self.api = api

    @nextcord.slash_command(name="ban", description="Ban a member's site account (staff)")
    async def ban(
        self, interaction: nextcord.Interaction,
        # nextcord reads an option's settings from the parameter's default.
        user: nextcord.User = nextcord.SlashOption(description="Who to ban"),  # noqa: B008
        reason: str = nextcord.SlashOption(description="Why (kept in the moderation journal)",
                                           max_length=500),
        duration: int | None = nextcord.SlashOption(
            description="Hours until the ban ends; leave empty for a permanent ban",
            required=False, default=None, min_value=1),
    ) -> None:
        async def work() -> Answer:
            ban = await self.api.ban(invoker=invoker_of(interaction).id, target=user.id,
                                     reason=reason, duration_hours=duration)
            until = (f"until {timestamp(ban.ends_at)} ({timestamp(ban.ends_at, 'R')})"
                     if ban.ends_at else "permanently")
            return Answer(f"Banned <@{ban.target_discord_id}> (site account "
                          f"**{escape(ban.target_username)}**) {until}.\n"
                          f"Reason: {escape(ban.reason)}\n"
                          "Their sessions have ended and their roles are being removed.")

        await respond(interaction, "ban", work)

    @nextcord.slash_command(name="unban", description="Lift a member's site ban (staff)")
    async def unban(
        self, interaction: nextcord.Interaction,
        user: nextcord.User = nextcord.SlashOption(  # noqa: B008
            description="Whose ban to lift"),
    ) -> None:
        async def work() -> Answer:
            lifted = await self.api.unban(invoker=invoker_of(interaction).id, target=user.id)
            return Answer(f"Lifted the ban of <@{lifted.target_discord_id}> (site account "
                          f"**{escape(lifted.target_username)}**). Their roles are being "
                          "restored.")

        await respond(interaction, "unban", work)
