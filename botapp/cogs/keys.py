"""/redeem and /generate_key."""

from __future__ import annotations

import io

import nextcord
from nextcord.ext import commands

from botapp.api_client import BotApiClient, GeneratedKeys
from botapp.replies import Answer, escape, invoker_of, respond, timestamp

# Up to this many codes fit a readable code block; more go into a text file.
INLINE_CODES = 10


def keys_answer(keys: GeneratedKeys) -> Answer:
    count = len(keys.codes)
    summary = (f"Generated {count} key{'s' if count != 1 else ''} for **{escape(keys.product)}**, "
               f"{keys.duration_days} day{'s' if keys.duration_days != 1 else ''} each "
               f"(batch `{keys.batch}`).")
    if count <= INLINE_CODES:
        return Answer(summary + "\n```\n" + "\n".join(keys.codes) + "\n```")
    data = io.BytesIO(("\n".join(keys.codes) + "\n").encode())
    return Answer(summary + " The codes are in the attached file.",
                  file=nextcord.File(data, filename=f"keys-{keys.product}-{keys.batch}.txt"))


class Keys(commands.Cog):
    def __init__(self, api: BotApiClient) -> None:
        self.api = api

    @nextcord.slash_command(name="redeem", description="Redeem a product key")
    async def redeem(
        self, interaction: nextcord.Interaction,
        key: str = nextcord.SlashOption(description="The key, e.g. ZSPB-XXXXX-XXXXX-XXXXX-XXXXX",
                                        min_length=1, max_length=64),
    ) -> None:
        async def work() -> Answer:
            redeemed = await self.api.redeem(invoker=invoker_of(interaction).id, key=key)
            return Answer(f"Key redeemed: **{escape(redeemed.product_name)}** is active until "
                          f"{timestamp(redeemed.expires_at)} "
                          f"({timestamp(redeemed.expires_at, 'R')}).")

        await respond(interaction, "redeem", work)

    # Who may generate keys is decided by the site (Moderator and above), not by Discord.
    @nextcord.slash_command(name="generate_key", description="Generate product keys (staff)")
    async def generate_key(
        self, interaction: nextcord.Interaction,
        product: str = nextcord.SlashOption(description="Product slug, e.g. loader",
                                            max_length=50),
        duration: int = nextcord.SlashOption(description="Days each key grants", min_value=1),
        count: int = nextcord.SlashOption(description="How many keys (1-100)", min_value=1,
                                          max_value=100),
        note: str = nextcord.SlashOption(description="Note kept with the batch",
                                         required=False, default="", max_length=200),
    ) -> None:
        async def work() -> Answer:
            keys = await self.api.generate_keys(invoker=invoker_of(interaction).id, product=product,
                                                duration_days=duration, count=count, note=note)
            return keys_answer(keys)

        await respond(interaction, "generate_key", work)
