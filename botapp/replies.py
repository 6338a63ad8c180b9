"""How a slash command answers: defer at once, do the API work, send one ephemeral follow-up.

Every command goes through `respond`, so the 3-second rule, the ephemeral flag and the
rendering of errors are decided once. Replies are ephemeral for every command: codes and keys
are secrets, stats are personal, and a refusal is nobody else's business; moderation is
announced by the site's moderation journal channel instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import nextcord

from botapp.api_client import BotApiError

logger = logging.getLogger(__name__)

DISCORD_MESSAGE_LIMIT = 2000

UNREACHABLE_TEXT = "The site is unreachable right now; try again in a few minutes."
NOT_LINKED_TEXT = (
    "Your Discord account is not linked to a site account yet. Run `/code` here and enter the "
    "code on the site, then try again."
)
BOT_REFUSED_TEXT = (
    "The site refused the bot's credentials, so nothing was done. Please tell the staff."
)
BOT_FAILED_TEXT = "Something went wrong in the bot; nothing was changed. Try again later."


@dataclass(frozen=True)
class Answer:
    content: str
    file: Any = None  # a nextcord.File when the answer carries an attachment


def invoker_of(interaction: nextcord.Interaction) -> nextcord.User | nextcord.Member:
    """The user who ran the command; Discord always sends one for slash commands."""
    user = interaction.user
    if user is None:
        raise RuntimeError("an application command interaction without a user")
    return user


def timestamp(moment: datetime, style: str = "f") -> str:
    """Discord renders <t:...> in each reader's own time zone (R: "in 3 days", live)."""
    return f"<t:{int(moment.timestamp())}:{style}>"


def escape(text: str) -> str:
    # User-controlled text (names, reasons) must not format or break the reply.
    return str(nextcord.utils.escape_markdown(text))


def clip(text: str, limit: int = DISCORD_MESSAGE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 2] + " …"


def error_text(exc: BotApiError) -> str:
    """What the invoking user reads for a failed call; the site's messages are written for them."""
    if exc.unreachable:
        return UNREACHABLE_TEXT
    if exc.code == "not_linked":
        return NOT_LINKED_TEXT
    if exc.status == 429:
        if exc.retry_after is not None:
            retry_at = time.time() + max(exc.retry_after, 1)
            return (f"Too many attempts; try again <t:{int(retry_at) + 1}:R> "
                    f"(in about {max(int(exc.retry_after), 1)} s).")
        return "Too many attempts; try again in a minute."
    if exc.status == 401:
        return BOT_REFUSED_TEXT
    if exc.status is not None and exc.status >= 500:
        return "The site hit an error; it has been logged. Try again later."
    if exc.code == "invalid_input":
        return _invalid_input_text(exc)
    return escape(exc.message)


def _invalid_input_text(exc: BotApiError) -> str:
    lines = [escape(exc.message)]
    errors = exc.details.get("errors")
    for error in errors if isinstance(errors, list) else []:
        if not isinstance(error, dict):
            continue
        loc = [str(part) for part in error.get("loc", []) if part not in ("body", "payload")]
        field = loc[-1] if loc else "input"
        lines.append(f"- `{escape(field)}`: {escape(str(error.get('msg', 'invalid')))}")
    return "\n".join(lines)


def _log_failure(command: str, exc: BotApiError) -> None:
    if exc.status == 401:
        # Only an operator can fix a token mismatch; make it stand out in the log.
        logger.error("/%s: the site refused BOT_API_TOKEN (401); check both .env files", command)
    elif exc.unreachable:
        logger.warning("/%s: site unreachable", command)
    elif exc.status is None or exc.status >= 500 or exc.code == "bad_response":
        logger.error("/%s: site error %s (%s)", command, exc.code, exc.status)
    else:
        logger.info("/%s refused: %s (%s)", command, exc.code, exc.status)


async def respond(interaction: nextcord.Interaction, command: str,
                  work: Callable[[], Awaitable[Answer]]) -> None:
    """Defer (ephemeral) first, then run `work` and send its answer or the error's text."""
    try:
        await interaction.response.defer(ephemeral=True)
    except nextcord.HTTPException:
        # The 3-second window passed (gateway lag) or Discord failed: nobody can be answered.
        logger.warning("/%s: could not defer the interaction", command, exc_info=True)
        return
    try:
        answer = await work()
    except BotApiError as exc:
        _log_failure(command, exc)
        answer = Answer(error_text(exc))
    except Exception:
        logger.exception("/%s failed in the bot", command)
        answer = Answer(BOT_FAILED_TEXT)
    await send(interaction, answer, command=command)


async def send(interaction: nextcord.Interaction, answer: Answer, *, command: str) -> None:
    kwargs: dict[str, Any] = {"ephemeral": True}
    if answer.file is not None:
        kwargs["file"] = answer.file
    try:
        await interaction.followup.send(clip(answer.content), **kwargs)
    except nextcord.HTTPException:
        logger.warning("/%s: could not send the follow-up", command, exc_info=True)
