"""`python -m botapp` (or `make bot`): run the Discord bot until stopped.

Exit status 2 means a configuration problem the operator must fix (settings, token, intents);
a service manager should not restart in a loop on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

import nextcord

from botapp.bot import ZspbBot
from botapp.settings import BotSettings, SettingsError, load_env_file, load_settings

logger = logging.getLogger("botapp")

CONFIG_ERROR = 2


async def _run(settings: BotSettings) -> None:
    bot = ZspbBot(settings)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # systemd stops with SIGTERM: close the gateway and the HTTP session cleanly.
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(signum, lambda: loop.create_task(bot.close()))
    try:
        await bot.start(settings.discord_token)
    finally:
        if not bot.is_closed():
            await bot.close()


def main() -> int:
    env_file = load_env_file()
    try:
        settings = load_settings()
    except SettingsError as exc:
        sys.stderr.write(f"botapp: {exc}\n")
        return CONFIG_ERROR
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if env_file is not None:
        logger.info("read %s", env_file)
    for warning in settings.warnings:
        logger.warning("%s", warning)
    logger.info("starting for guild %s, site API %s", settings.guild_id, settings.api_base)
    try:
        asyncio.run(_run(settings))
    except nextcord.LoginFailure:
        logger.error("Discord refused DISCORD_BOT_TOKEN: reset the token in the developer "
                     "portal (Bot -> Reset Token) and set it again")
        return CONFIG_ERROR
    except nextcord.PrivilegedIntentsRequired:
        logger.error("Discord refused the GUILD_MEMBERS intent: enable 'Server Members Intent' "
                     "in the developer portal (Bot -> Privileged Gateway Intents)")
        return CONFIG_ERROR
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
