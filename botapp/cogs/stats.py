"""/stats [@user]: one's own always; anyone else's for Support and above (the site decides)."""

from __future__ import annotations

import nextcord
from nextcord.ext import commands

from botapp.api_client import BotApiClient, Stats
from botapp.replies import Answer, escape, invoker_of, respond, timestamp

MAX_SUBSCRIPTIONS_SHOWN = 15


def stats_text(stats: Stats, *, own: bool) -> str:
    quota = "unlimited" if stats.invite_quota is None else str(stats.invite_quota)
    left = ("unlimited" if stats.invites_left_this_month is None
            else str(stats.invites_left_this_month))
    lines = [
        f"**{escape(stats.username)}**" + (f" ({escape(stats.role)})" if stats.role else ""),
        f"Member since {timestamp(stats.date_joined, 'D')}"
        + (f", invited by {escape(stats.invited_by)}" if stats.invited_by else ""),
        f"Invites: {stats.invites_created} created, {stats.invites_used} used; "
        f"{left} left this month (quota {quota})",
        f"Keys redeemed: {stats.keys_redeemed}",
    ]
    if stats.banned:
        until = f" until {timestamp(stats.ban_ends_at)}" if stats.ban_ends_at else ""
        lines.append(f"**Banned**{until}: {escape(stats.ban_reason or 'no reason given')}")
    active = [sub for sub in stats.subscriptions if sub.active]
    if not stats.subscriptions:
        lines.append("No subscriptions." + (" Redeem a key with `/redeem`." if own else ""))
    else:
        lines.append(f"Subscriptions ({len(active)} active):")
    for sub in stats.subscriptions[:MAX_SUBSCRIPTIONS_SHOWN]:
        state = (f"active until {timestamp(sub.expires_at)} ({timestamp(sub.expires_at, 'R')})"
                 if sub.active else f"expired {timestamp(sub.expires_at, 'R')}")
        lines.append(f"- **{escape(sub.product_name)}**: {state}")
    hidden = len(stats.subscriptions) - MAX_SUBSCRIPTIONS_SHOWN
    if hidden > 0:
        lines.append(f"… and {hidden} more")
    return "\n".join(lines)


class StatsCog(commands.Cog, name="Stats"):
    def __init__(self, api: BotApiClient) -> None:
        self.api = api

    @nextcord.slash_command(name="stats", description="Show your stats, or a member's (staff)")
    async def stats(
        self, interaction: nextcord.Interaction,
        # nextcord reads an option's settings from the parameter's default.
        user: nextcord.User | None = nextcord.SlashOption(  # noqa: B008
            description="Whose stats (yours if empty)", required=False, default=None),
    ) -> None:
        async def work() -> Answer:
            invoker = invoker_of(interaction).id
            target = user.id if user is not None else invoker
            stats = await self.api.stats(invoker=invoker, target=target)
            return Answer(stats_text(stats, own=target == invoker))

        await respond(interaction, "stats", work)
