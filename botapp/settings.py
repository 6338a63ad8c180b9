"""The bot's settings, from environment variables only.

The bot never imports Django (it may run on another host than the site), so it reads its own
few variables here and refuses to start, naming every bad one at once, rather than failing
later on the first command.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_API_BASE = "http://127.0.0.1:8000/api"
DEFAULT_API_TIMEOUT = 10.0
# Same bound as the site's settings: a shorter token is refused there, so it cannot work here.
MIN_API_TOKEN_LENGTH = 32
# Digits of a Discord snowflake; the site stores ids in a signed BIGINT, hence at most 19.
_SNOWFLAKE = re.compile(r"^[1-9][0-9]{0,18}$")
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
PROJECT_DIR = Path(__file__).resolve().parent.parent

logger = logging.getLogger(__name__)


class SettingsError(Exception):
    """One message listing every invalid variable."""


@dataclass(frozen=True)
class BotSettings:
    # Secrets stay out of repr() so a logged settings object leaks nothing.
    discord_token: str = field(repr=False)
    guild_id: int
    api_token: str = field(repr=False)
    api_base: str = DEFAULT_API_BASE
    api_timeout: float = DEFAULT_API_TIMEOUT
    site_url: str = "http://127.0.0.1:8000"
    log_level: str = "INFO"
    warnings: tuple[str, ...] = ()


def _clean(environ: Mapping[str, str], name: str) -> str:
    return (environ.get(name) or "").strip()


def _site_url(api_base: str) -> str:
    # The /code reply points people at the site; by default that is the API's own host.
    return api_base[: -len("/api")] if api_base.endswith("/api") else api_base


def load_settings(environ: Mapping[str, str] | None = None) -> BotSettings:
    """Read and validate the bot's variables; raise SettingsError naming all problems."""
    env = os.environ if environ is None else environ
    problems: list[str] = []
    warnings: list[str] = []

    discord_token = _clean(env, "DISCORD_BOT_TOKEN")
    if not discord_token:
        problems.append("DISCORD_BOT_TOKEN must be set (developer portal -> Bot -> Reset Token)")
    elif any(char.isspace() for char in discord_token):
        problems.append("DISCORD_BOT_TOKEN must not contain spaces")

    raw_guild = _clean(env, "DISCORD_GUILD_ID")
    guild_id = 0
    if not raw_guild:
        problems.append("DISCORD_GUILD_ID must be set (the server id, digits only)")
    elif not _SNOWFLAKE.match(raw_guild):
        problems.append(f"DISCORD_GUILD_ID must be a Discord id (digits only), got {raw_guild!r}")
    else:
        guild_id = int(raw_guild)

    api_token = _clean(env, "BOT_API_TOKEN")
    if not api_token:
        problems.append("BOT_API_TOKEN must be set to the site's value (its .env, or "
                        "var/local-secrets.json for an embedded-default trial)")
    elif len(api_token) < MIN_API_TOKEN_LENGTH:
        problems.append(f"BOT_API_TOKEN must be at least {MIN_API_TOKEN_LENGTH} characters")

    api_base = (_clean(env, "ZSPB_API_BASE") or DEFAULT_API_BASE).rstrip("/")
    parts = urlsplit(api_base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(f"ZSPB_API_BASE must be an http(s) URL such as {DEFAULT_API_BASE}, "
                        f"got {api_base!r}")
    elif parts.scheme == "http" and parts.hostname not in _LOCAL_HOSTS:
        # Allowed for private networks, but the bearer token then crosses it in clear text.
        warnings.append(f"ZSPB_API_BASE uses plain http to {parts.hostname}: BOT_API_TOKEN is "
                        "sent unencrypted; use https unless the network is private")

    api_timeout = DEFAULT_API_TIMEOUT
    raw_timeout = _clean(env, "ZSPB_API_TIMEOUT")
    if raw_timeout:
        try:
            api_timeout = float(raw_timeout)
        except ValueError:
            problems.append(f"ZSPB_API_TIMEOUT must be a number of seconds, got {raw_timeout!r}")
        else:
            # A deferred interaction can wait, but past a minute the user has given up.
            if not 1 <= api_timeout <= 60:
                problems.append(f"ZSPB_API_TIMEOUT must be between 1 and 60, got {raw_timeout}")

    site_url = (_clean(env, "SITE_URL") or _site_url(api_base)).rstrip("/")

    log_level = (_clean(env, "LOG_LEVEL") or "INFO").upper()
    if log_level not in _LOG_LEVELS:
        problems.append(f"LOG_LEVEL must be one of {', '.join(sorted(_LOG_LEVELS))}, "
                        f"got {log_level!r}")

    if problems:
        raise SettingsError("the Discord bot cannot start:\n  - " + "\n  - ".join(problems))
    return BotSettings(discord_token=discord_token, guild_id=guild_id, api_token=api_token,
                       api_base=api_base, api_timeout=api_timeout, site_url=site_url,
                       log_level=log_level, warnings=tuple(warnings))


def load_env_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """Load .env (ZSPB_ENV_FILE, else the project's) like the site does: real variables win.

    Only for running next to the site with `make bot`; on another host the variables come
    from the service manager and no file need exist.
    """
    from dotenv import load_dotenv  # only the entry point needs it

    env = os.environ if environ is None else environ
    path = Path(env.get("ZSPB_ENV_FILE") or PROJECT_DIR / ".env")
    if not path.is_file():
        return None
    load_dotenv(path, override=False)
    return path
