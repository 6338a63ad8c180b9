"""Discord fixtures, loaded for the whole suite by `pytest_plugins` in tests/conftest.py.

Every test runs with Discord off and webhooks unset, and httpx refuses any host but loopback,
so no test (and no developer's .env) can ever reach discord.com. Tests that need Discord ask
for `discord_standin`, which points the settings at a local stand-in server.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.discord_standin import DiscordStandin

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# The discard port: nothing listens there, so a request that slipped through fails fast.
OFFLINE_API_BASE = "http://127.0.0.1:9/api/v10"
JOURNALS = ("user", "moderation", "error")


@pytest.fixture(autouse=True)
def _discord_offline(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.DISCORD_ENABLED = False
    settings.DISCORD_BOT_TOKEN = None
    settings.DISCORD_GUILD_ID = None
    settings.DISCORD_API_BASE = OFFLINE_API_BASE
    settings.WEBHOOK_URLS = dict.fromkeys(JOURNALS)
    original = httpx.HTTPTransport.handle_request

    def loopback_only(self: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        if request.url.host not in LOOPBACK:
            raise AssertionError(f"test tried to reach {request.url.host}; use discord_standin")
        return original(self, request)

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", loopback_only)


@pytest.fixture
def discord_standin(settings: Any) -> Iterator[DiscordStandin]:
    """A running stand-in; Discord settings and the three journal webhooks point at it."""
    standin = DiscordStandin().start()
    settings.DISCORD_API_BASE = standin.api_base
    settings.DISCORD_BOT_TOKEN = standin.token
    settings.DISCORD_GUILD_ID = standin.guild_id
    settings.DISCORD_ENABLED = True
    settings.WEBHOOK_URLS = {journal: standin.add_webhook(journal) for journal in JOURNALS}
    try:
        yield standin
    finally:
        standin.stop()
