"""The bot's cogs and API client against a live test server of the site, over real HTTP.

/generate_key by a linked moderator -> /code by a new member -> the code entered on the site
through the member API (session + CSRF) -> the link confirmed in Discord -> /redeem -> /stats.
The ORM is used only outside the event loop (Django refuses it inside one).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import pytest
from django.conf import settings as django_settings

from botapp.api_client import BotApiClient
from botapp.cogs.keys import Keys
from botapp.cogs.linking import Linking
from botapp.cogs.stats import StatsCog
from botapp.link_watch import LinkWatcher
from botapp.replies import NOT_LINKED_TEXT
from core.models import Subscription, User
from tests.botapp.conftest import FakeInteraction, FakeUser
from tests.factories import ProductFactory

MODERATOR_DISCORD = 600_000_000_000_000_001
MEMBER_DISCORD = 600_000_000_000_000_002
LOADER_ROLE = 700_000_000_000_000_001
PASSWORD = "correct horse battery"  # tests.factories.UserFactory's


async def _link_on_site(base: str, username: str, code: str) -> dict[str, Any]:
    """What the site's Link Discord page does: log in, then POST the code with the CSRF token."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as web:
        async with web.get(f"{base}/api/auth/csrf") as resp:
            assert resp.status == 200
            token = (await resp.json())["csrf_token"]
        headers = {"X-CSRFToken": token}
        async with web.post(f"{base}/api/auth/login", headers=headers,
                            json={"username": username, "password": PASSWORD}) as resp:
            assert resp.status == 200, await resp.text()
        # Login rotates the CSRF token; the page reads it again from the cookie.
        token = next(cookie.value for cookie in web.cookie_jar
                     if cookie.key == django_settings.CSRF_COOKIE_NAME)
        async with web.post(f"{base}/api/discord/link", headers={"X-CSRFToken": token},
                            json={"code": code}) as resp:
            assert resp.status == 200, await resp.text()
            result: dict[str, Any] = await resp.json()
            return result


async def _scenario(base: str, token: str, member_username: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    async with BotApiClient(f"{base}/api", token, timeout=10) as api:
        moderator = FakeUser(MODERATOR_DISCORD, "mod_dc")
        member = FakeUser(MEMBER_DISCORD, "member_dc")

        # A moderator generates a key in Discord.
        generated = FakeInteraction(moderator)
        await Keys(api).generate_key(generated, "loader", 30, 1, "e2e")
        match = re.search(r"```\n(ZSPB-[0-9A-Z-]+)\n```", generated.reply.content)
        assert match, generated.reply.content
        key = match.group(1)
        seen["generate"] = generated.reply.content

        # Bad counts are refused by the site and explained.
        for count in (0, 1000):
            bad = FakeInteraction(moderator)
            await Keys(api).generate_key(bad, "loader", 30, count, "")
            seen[f"count_{count}"] = bad.reply.content

        # The member is not linked yet: /redeem says to run /code; generating is refused.
        early = FakeInteraction(member)
        await Keys(api).redeem(early, key)
        seen["unlinked"] = early.reply.content

        # /code, then the code entered on the site.
        watcher = LinkWatcher(api)
        asked = FakeInteraction(member)
        await Linking(api, watcher, site_url=base).code(asked)
        match = re.search(r"\*\*`([0-9A-Z]{4}-[0-9A-Z]{4})`\*\*", asked.reply.content)
        assert match, asked.reply.content
        await watcher.poll_once()
        assert len(asked.followup.sent) == 1  # not linked yet: no confirmation
        seen["link"] = await _link_on_site(base, member_username, match.group(1))
        await watcher.poll_once()
        seen["confirmation"] = asked.followup.sent[-1]

        # /redeem and /stats as the now linked member.
        redeemed = FakeInteraction(member)
        await Keys(api).redeem(redeemed, key)
        seen["redeem"] = redeemed.reply.content
        again = FakeInteraction(member)
        await Keys(api).redeem(again, key)
        seen["redeem_again"] = again.reply.content
        refused = FakeInteraction(member)
        await Keys(api).generate_key(refused, "loader", 30, 1, "")
        seen["member_generates"] = refused.reply.content
        stats = FakeInteraction(member)
        await StatsCog(api).stats(stats, None)
        seen["stats"] = stats.reply.content
        seen["stats_record"] = await api.stats(invoker=MEMBER_DISCORD, target=MEMBER_DISCORD)
        seen["roles"] = await api.member_roles(MEMBER_DISCORD)
    return seen


@pytest.mark.django_db(transaction=True)
def test_code_link_redeem_stats(live_server: Any, settings: Any, moderator: User,
                                member: User) -> None:
    # Plain http on loopback: cookies must not be Secure-only for the session to come back.
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    ProductFactory.create(name="Loader", slug="loader", discord_role_id=LOADER_ROLE)
    User.objects.filter(pk=moderator.pk).update(discord_id=MODERATOR_DISCORD,
                                                discord_username="mod_dc")

    seen = asyncio.run(_scenario(live_server.url, settings.BOT_API_TOKEN, member.username))

    assert seen["generate"].startswith("Generated 1 key for **loader**, 30 days each")
    assert "- `count`: Input should be greater than or equal to 1" in seen["count_0"]
    assert "- `count`: Input should be less than or equal to 100" in seen["count_1000"]
    assert seen["unlinked"] == NOT_LINKED_TEXT
    assert seen["link"] == {"discord_id": str(MEMBER_DISCORD), "discord_username": "member_dc"}
    confirmation = seen["confirmation"]
    assert confirmation.ephemeral
    assert f"now linked to your site account **{member.username}**" in confirmation.content
    assert seen["redeem"].startswith("Key redeemed: **Loader** is active until <t:")
    assert seen["redeem_again"].startswith("This key has already been redeemed")
    assert seen["member_generates"] == "You do not have permission to do that."
    assert "**Loader**: active until" in seen["stats"]
    record = seen["stats_record"]
    assert record.username == member.username and record.keys_redeemed == 1
    assert [(s.product, s.active) for s in record.subscriptions] == [("loader", True)]
    assert seen["roles"].linked and LOADER_ROLE in seen["roles"].managed

    member.refresh_from_db()
    assert member.discord_id == MEMBER_DISCORD
    assert Subscription.objects.get(user=member).product.slug == "loader"
