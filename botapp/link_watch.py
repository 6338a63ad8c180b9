"""Confirming in Discord that a /code was used on the site.

The site has no push to the bot, so the bot keeps, for each code it issued and that is still
valid, the interaction that asked for it, and asks the site every few seconds whether that
member is linked now. When they are, it answers on the same interaction (an ephemeral
follow-up, which Discord accepts for 15 minutes) or, once that token has expired, by DM.

Kept in memory per process: a restart forgets pending codes, which only costs the
confirmation message (the site's own page confirms the link too). One entry per Discord user,
since the site voids an earlier code when a new one is issued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import nextcord

from botapp.api_client import BotApiClient, BotApiError

logger = logging.getLogger(__name__)

POLL_SECONDS = 5.0
# The code may be used in its last second; one more poll after expiry still sees the link.
GRACE = timedelta(seconds=30)
MAX_PENDING = 1000  # a memory bound; /code is throttled per user by the site anyway

CONFIRMATION_TEXT = (
    "Your Discord account is now linked to your site account **{username}**. Your roles "
    "follow the site from now on."
)
CONFIRMATION_TEXT_PLAIN = (
    "Your Discord account is now linked to your site account. Your roles follow the site "
    "from now on."
)


@dataclass
class PendingLink:
    user: Any  # the nextcord Member who ran /code, for the DM fallback
    interaction: Any
    expires_at: datetime


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class LinkWatcher:
    def __init__(self, api: BotApiClient, *, interval: float = POLL_SECONDS,
                 now: Callable[[], datetime] = _utcnow) -> None:
        self.api = api
        self.interval = interval
        self._now = now
        self._pending: dict[int, PendingLink] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> dict[int, PendingLink]:
        return self._pending

    def watch(self, *, user: Any, interaction: Any, expires_at: datetime) -> None:
        if len(self._pending) >= MAX_PENDING and int(user.id) not in self._pending:
            oldest = min(self._pending, key=lambda key: self._pending[key].expires_at)
            del self._pending[oldest]
        self._pending[int(user.id)] = PendingLink(user, interaction, expires_at)

    async def poll_once(self) -> None:
        now = self._now()
        for discord_id, pending in list(self._pending.items()):
            if now > pending.expires_at + GRACE:
                del self._pending[discord_id]
                continue
            try:
                roles = await self.api.member_roles(discord_id)
            except BotApiError as exc:
                logger.debug("link check for %s postponed: %s", discord_id, exc)
                continue
            if roles.linked:
                # Popped first: a failing confirmation must not be retried every few seconds.
                self._pending.pop(discord_id, None)
                await self._confirm(discord_id, pending)

    async def _confirm(self, discord_id: int, pending: PendingLink) -> None:
        text = CONFIRMATION_TEXT_PLAIN
        try:
            stats = await self.api.stats(invoker=discord_id, target=discord_id)
        except BotApiError:
            pass  # the name is a nicety; confirm without it
        else:
            text = CONFIRMATION_TEXT.format(
                username=nextcord.utils.escape_markdown(stats.username))
        try:
            await pending.interaction.followup.send(text, ephemeral=True)
            return
        except nextcord.HTTPException:
            logger.info("link of %s: interaction expired, confirming by DM", discord_id)
        try:
            await pending.user.send(text)
        except nextcord.HTTPException:
            # DMs closed: the site's page has confirmed the link already.
            logger.info("link of %s: could not confirm by DM either", discord_id)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.poll_once()
            except Exception:  # one bad round must not end the loop
                logger.exception("link watcher round failed")

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(),
                                                                name="zspb-link-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
