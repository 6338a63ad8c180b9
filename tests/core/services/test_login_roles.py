"""At login the member's Discord roles are checked and a sync queued if they differ;
bounded by a short timeout, and a login never fails or hangs because of Discord."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache
from django_q.models import OrmQ

from core.models import Role, RoleSyncRequest
from core.services.rolesync import login as rolesync_login
from core.services.rolesync import member_roles_check, role_sync_drain
from core.services.rolesync.drain import HALT_KEY
from tests.api.conftest import ApiClient
from tests.discord_standin import Fault
from tests.factories import UserFactory

USER_ROLE = 111_000_000_000_000_001
SUPPORT_ROLE = 111_000_000_000_000_002
UNMANAGED = 999_000_000_000_000_001
DISCORD_ID = 333_000_000_000_000_001
PASSWORD = "correct horse battery"


@pytest.fixture
def linked(discord_standin, roles):
    Role.objects.filter(key="user").update(discord_role_id=USER_ROLE)
    Role.objects.filter(key="support").update(discord_role_id=SUPPORT_ROLE)
    return UserFactory.create(username="walker", role=Role.objects.get(key="user"),
                              discord_id=DISCORD_ID)


def login(username="walker"):
    response = ApiClient().post("/api/auth/login", {"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.content
    return response


@pytest.mark.django_db
class TestCheck:
    def test_matching_roles_queue_nothing(self, linked, discord_standin):
        discord_standin.add_member(DISCORD_ID, [USER_ROLE, UNMANAGED])
        assert member_roles_check(user=linked) is False
        assert not RoleSyncRequest.objects.exists()
        assert [s.method for s in discord_standin.served()] == ["GET"]

    def test_a_manual_edit_queues_a_sync_that_fixes_it(self, linked, discord_standin):
        discord_standin.add_member(DISCORD_ID, [USER_ROLE, SUPPORT_ROLE, UNMANAGED])
        assert member_roles_check(user=linked) is True
        assert RoleSyncRequest.objects.get().reason == "login"
        role_sync_drain()
        assert discord_standin.roles_of(DISCORD_ID) == {USER_ROLE, UNMANAGED}

    def test_a_missing_role_queues_a_sync(self, linked, discord_standin):
        discord_standin.add_member(DISCORD_ID, [])
        assert member_roles_check(user=linked) is True

    def test_not_in_the_guild_queues_nothing(self, linked, discord_standin):
        assert member_roles_check(user=linked) is False  # the bot reports the join
        assert not RoleSyncRequest.objects.exists()

    def test_unlinked_or_disabled_makes_no_request(self, linked, discord_standin, member,
                                                   settings):
        assert member_roles_check(user=member) is False
        settings.DISCORD_ENABLED = False
        assert member_roles_check(user=linked) is False
        assert discord_standin.served() == []

    @pytest.mark.parametrize("fault", [Fault.server_error(503), Fault.ratelimit(10.0),
                                       Fault.forbidden(), Fault.disconnect()],
                             ids=["5xx", "429", "403", "dropped"])
    def test_failures_queue_a_sync_without_waiting(self, linked, discord_standin, fault):
        discord_standin.add_member(DISCORD_ID, [USER_ROLE])
        discord_standin.script(fault, repeat=True)
        started = time.monotonic()
        assert member_roles_check(user=linked) is True
        assert time.monotonic() - started < 1.0
        assert len(discord_standin.served()) == 1  # no retries at login
        assert RoleSyncRequest.objects.get().reason == "login"

    def test_slow_discord_is_cut_off(self, linked, discord_standin):
        discord_standin.add_member(DISCORD_ID, [USER_ROLE])
        discord_standin.slow_all(5.0)
        started = time.monotonic()
        assert member_roles_check(user=linked, timeout=0.3) is True
        assert time.monotonic() - started < 1.0
        assert RoleSyncRequest.objects.exists()

    def test_down_discord_queues_a_sync(self, linked, discord_standin):
        discord_standin.stop()
        assert member_roles_check(user=linked) is True
        assert RoleSyncRequest.objects.exists()

    def test_known_outage_or_halt_skips_the_request(self, linked, discord_standin):
        cache.set(HALT_KEY, time.time() + 60)
        assert member_roles_check(user=linked) is True
        assert discord_standin.served() == []
        assert RoleSyncRequest.objects.exists()

    def test_an_unexpected_error_is_swallowed(self, linked, discord_standin, monkeypatch):
        discord_standin.add_member(DISCORD_ID, [USER_ROLE])

        def broken(**kwargs):
            raise RuntimeError("bug")

        monkeypatch.setattr(rolesync_login, "member_wanted_roles", broken)
        assert member_roles_check(user=linked) is False


@pytest.mark.django_db
class TestAtLogin:
    def test_login_queues_a_sync_and_a_drain(self, linked, discord_standin,
                                             django_capture_on_commit_callbacks):
        discord_standin.add_member(DISCORD_ID, [SUPPORT_ROLE])
        with django_capture_on_commit_callbacks(execute=True):
            login()
        assert RoleSyncRequest.objects.get(user=linked).reason == "login"
        assert OrmQ.objects.get().task["func"] == "core.tasks.rolesync_drain"

    def test_login_with_matching_roles_queues_nothing(self, linked, discord_standin,
                                                      django_capture_on_commit_callbacks):
        discord_standin.add_member(DISCORD_ID, [USER_ROLE])
        with django_capture_on_commit_callbacks(execute=True):
            login()
        assert not RoleSyncRequest.objects.exists() and not OrmQ.objects.exists()

    def test_login_succeeds_quickly_while_discord_hangs(self, linked, discord_standin):
        discord_standin.add_member(DISCORD_ID, [USER_ROLE])
        discord_standin.slow_all(10.0)
        started = time.monotonic()
        login()
        assert time.monotonic() - started < rolesync_login.LOGIN_CHECK_TIMEOUT + 1.0
        assert RoleSyncRequest.objects.filter(user=linked, reason="login").exists()

    def test_login_succeeds_when_the_check_breaks(self, linked, discord_standin, monkeypatch):
        def broken(**kwargs):
            raise RuntimeError("bug")

        monkeypatch.setattr(rolesync_login, "discord_client", broken)
        login()
