from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.errors import AccountAlreadyLinked, DiscordAlreadyLinked, LinkCodeInvalid, UserBanned
from core.models import DiscordLinkCode, LogEntry
from core.services.bans import ban_create
from core.services.discord_link import link_code_consume, link_code_create
from tests.factories import UserFactory

DISCORD_ID = 123456789012345678


@pytest.mark.django_db
class TestLinkCodes:
    def test_link(self, member):
        code = link_code_create(discord_id=DISCORD_ID, discord_username="member#1")
        assert len(code) == 9 and code[4] == "-"
        link_code_consume(user=member, code=code)
        member.refresh_from_db()
        assert member.discord_id == DISCORD_ID and member.discord_username == "member#1"
        assert LogEntry.objects.filter(action="discord.link", actor=member).exists()

    def test_only_digest_stored(self, member):
        code = link_code_create(discord_id=DISCORD_ID)
        row = DiscordLinkCode.objects.get()
        assert code.replace("-", "") not in row.code_digest and len(row.code_digest) == 64

    def test_single_use(self, member):
        code = link_code_create(discord_id=DISCORD_ID)
        link_code_consume(user=member, code=code)
        with pytest.raises(LinkCodeInvalid):
            link_code_consume(user=UserFactory.create(), code=code)

    def test_expires_after_ttl(self, member):
        code = link_code_create(discord_id=DISCORD_ID,
                                now=timezone.now() - timedelta(minutes=15, seconds=1))
        with pytest.raises(LinkCodeInvalid):
            link_code_consume(user=member, code=code)

    def test_valid_just_before_ttl(self, member):
        code = link_code_create(discord_id=DISCORD_ID,
                                now=timezone.now() - timedelta(minutes=14, seconds=50))
        link_code_consume(user=member, code=code)

    def test_new_code_voids_old(self, member):
        old = link_code_create(discord_id=DISCORD_ID)
        new = link_code_create(discord_id=DISCORD_ID)
        with pytest.raises(LinkCodeInvalid):
            link_code_consume(user=member, code=old)
        link_code_consume(user=member, code=new)
        assert DiscordLinkCode.objects.filter(status="void").count() == 1

    def test_discord_account_links_once(self, member):
        link_code_consume(user=member, code=link_code_create(discord_id=DISCORD_ID))
        with pytest.raises(DiscordAlreadyLinked):
            link_code_create(discord_id=DISCORD_ID)

    def test_second_discord_for_linked_account_refused(self, member):
        link_code_consume(user=member, code=link_code_create(discord_id=DISCORD_ID))
        code = link_code_create(discord_id=DISCORD_ID + 1)
        with pytest.raises(AccountAlreadyLinked):
            link_code_consume(user=member, code=code)
        # refusal rolled back: the code is still usable by an unlinked account
        link_code_consume(user=UserFactory.create(), code=code)

    def test_banned_user_cannot_link(self, member, moderator):
        code = link_code_create(discord_id=DISCORD_ID)
        ban_create(actor=moderator, user=member, reason="x")
        member.refresh_from_db()
        with pytest.raises(UserBanned):
            link_code_consume(user=member, code=code)

    @pytest.mark.parametrize("garbage", ["", "ABCD", "ABCD-EFGH-IJKL", "ÄÖÜ!-????", "x" * 500])
    def test_garbage(self, member, garbage):
        with pytest.raises(LinkCodeInvalid):
            link_code_consume(user=member, code=garbage)
