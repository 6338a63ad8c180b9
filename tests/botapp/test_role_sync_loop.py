"""One writer of Discord roles, and no toggling: the site's drain edits roles on the loopback
Discord stand-in; the bot hears each edit as a member update and reports it to the live site
over HTTP; the sync that queues finds the roles right and writes nothing, so it ends there.

The ORM (the drain) runs outside the event loop; the bot's cog runs inside one per round.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from botapp.api_client import BotApiClient
from botapp.cogs.members import ManagedRoles, Members
from core.models import Role, RoleSyncRequest, Subscription
from core.services.rolesync import role_sync_drain, role_sync_request
from tests.botapp.conftest import FakeGuild
from tests.discord_standin import DiscordStandin, Served
from tests.factories import ProductFactory, UserFactory

USER_ROLE = 111_000_000_000_000_001
SUPPORT_ROLE = 111_000_000_000_000_002
LOADER_ROLE = 222_000_000_000_000_001
UNMANAGED = 999_000_000_000_000_001
DISCORD_ID = 333_000_000_000_000_001


def _guild(guild_id: int) -> FakeGuild:
    guild = FakeGuild(guild_id)
    for position, role_id in enumerate((UNMANAGED, LOADER_ROLE, USER_ROLE, SUPPORT_ROLE), 1):
        guild.role(role_id, str(role_id), position)
    return guild


async def _gateway(api_base: str, token: str, guild: FakeGuild, held: set[int],
                   writes: list[Served]) -> set[int]:
    """Deliver one member update per role edit the stand-in applied, as Discord would."""
    async with BotApiClient(api_base, token, timeout=10) as api:
        cog = Members(api, ManagedRoles(), guild_id=guild.id)
        current = set(held)
        for write in writes:
            role_id = int(write.path.rsplit("/", 1)[1])
            after = current | {role_id} if write.method == "PUT" else current - {role_id}
            before_member = guild.member(DISCORD_ID, *sorted(current))
            after_member = guild.member(DISCORD_ID, *sorted(after))
            await cog.on_member_update(before_member, after_member)
            current = after
        return current


def _rounds(standin: DiscordStandin, guild: FakeGuild, api_base: str, token: str,
            *, max_rounds: int = 5) -> list[int]:
    """Drain, tell the bot what changed, repeat until quiet. Role writes per round."""
    writes_per_round: list[int] = []
    for _ in range(max_rounds):
        before = standin.roles_of(DISCORD_ID) or set()
        seen = len(standin.served(group="member.roles"))
        role_sync_drain()
        writes = [s for s in standin.served(group="member.roles")[seen:] if s.status == 204]
        writes_per_round.append(len(writes))
        if writes:
            assert asyncio.run(_gateway(api_base, token, guild, before, writes)) == (
                standin.roles_of(DISCORD_ID))
        if not RoleSyncRequest.objects.exists():
            break
    return writes_per_round


@pytest.mark.django_db(transaction=True)
def test_the_sites_own_role_edits_do_not_loop(live_server: Any, settings: Any,
                                              discord_standin: DiscordStandin,
                                              roles: dict[str, Role]) -> None:
    Role.objects.filter(key="user").update(discord_role_id=USER_ROLE)
    Role.objects.filter(key="support").update(discord_role_id=SUPPORT_ROLE)
    loader = ProductFactory.create(slug="loader", discord_role_id=LOADER_ROLE)
    user = UserFactory.create(role=roles["user"], discord_id=DISCORD_ID)
    now = timezone.now()
    Subscription.objects.create(user=user, product=loader, started_at=now,
                                expires_at=now + timedelta(days=30))
    discord_standin.add_member(DISCORD_ID, [UNMANAGED])
    guild = _guild(int(settings.DISCORD_GUILD_ID))
    api_base, token = f"{live_server.url}/api", settings.BOT_API_TOKEN

    # A link: the drain adds both roles; their two echoes queue one sync that writes nothing.
    role_sync_request(user_id=user.pk, reason="link")
    assert _rounds(discord_standin, guild, api_base, token) == [2, 0]
    assert discord_standin.roles_of(DISCORD_ID) == {USER_ROLE, LOADER_ROLE, UNMANAGED}

    # A moderator hands out Support by hand: the bot reports it, the site takes it back once.
    seen = len(discord_standin.served(group="member.roles"))
    discord_standin.add_member(DISCORD_ID, [USER_ROLE, LOADER_ROLE, UNMANAGED, SUPPORT_ROLE])
    asyncio.run(_gateway(api_base, token, guild, {USER_ROLE, LOADER_ROLE, UNMANAGED},
                         [Served(0.0, "PUT", f"/x/roles/{SUPPORT_ROLE}", "member.roles", "",
                                 status=204)]))
    assert _rounds(discord_standin, guild, api_base, token) == [1, 0]
    assert discord_standin.roles_of(DISCORD_ID) == {USER_ROLE, LOADER_ROLE, UNMANAGED}
    assert [s.method for s in discord_standin.served(group="member.roles")[seen:]] == ["DELETE"]
    # Only the site wrote roles, and always as its role sync.
    assert {s.audit_reason.split(" (")[0] for s in discord_standin.served(group="member.roles")
            if s.audit_reason} == {"ZalypaSPB role sync"}
