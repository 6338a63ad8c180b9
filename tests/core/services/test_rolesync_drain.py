"""The role-sync drain against the loopback Discord stand-in, through the real HTTP client.

Whatever the script of failures (429s with headers, 403/50013, 401, 404/10007, 5xx, slow
answers, dropped connections, the server down), every member ends with exactly the wanted
managed roles, unmanaged roles untouched, no limit broken and no request lost.
"""

from __future__ import annotations

import random
import threading
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone
from django_q.models import OrmQ

from core.discord import rest
from core.discord.rest import discord_client
from core.models import LogEntry, Role, RoleSyncRequest, Subscription, User
from core.selectors import discord as discord_selectors
from core.selectors.discord import managed_role_ids, member_wanted_roles
from core.services.bans import ban_create, ban_lift
from core.services.bot import bot_member_event
from core.services.discord_link import discord_unlink, link_code_consume, link_code_create
from core.services.rolesync import (
    drain,
    reconcile,
    role_sync_drain,
    role_sync_expired,
    role_sync_request,
    roles_reconcile_all,
    roles_strip_orphans,
)
from core.services.rolesync.drain import FORBIDDEN_ROLE_PREFIX, HALT_KEY, LOCK_KEY
from tests.discord_standin import Fault
from tests.factories import ProductFactory, UserFactory

USER_ROLE = 111_000_000_000_000_001
SUPPORT_ROLE = 111_000_000_000_000_002
LOADER_ROLE = 222_000_000_000_000_001
EXTRA_ROLE = 222_000_000_000_000_002
UNMANAGED = 999_000_000_000_000_001  # e.g. "Nitro booster": the site never touches it
DISCORD_BASE = 333_000_000_000_000_000


@pytest.fixture(autouse=True)
def _quick_backoff(monkeypatch):
    monkeypatch.setattr(rest, "BACKOFF_BASE", 0.02)


@pytest.fixture
def world(discord_standin, roles):
    Role.objects.filter(key="user").update(discord_role_id=USER_ROLE)
    Role.objects.filter(key="support").update(discord_role_id=SUPPORT_ROLE)
    loader = ProductFactory.create(slug="loader", discord_role_id=LOADER_ROLE)
    extra = ProductFactory.create(slug="extra", discord_role_id=EXTRA_ROLE)
    return {"standin": discord_standin, "loader": loader, "extra": extra,
            "roles": {r.key: r for r in Role.objects.all()}}


def linked_member(world, n, *, discord_roles=(), subscribe=(), role="user", in_guild=True):
    user = UserFactory.create(role=world["roles"][role], discord_id=DISCORD_BASE + n)
    now = timezone.now()
    for product in subscribe:
        Subscription.objects.create(user=user, product=world[product], started_at=now,
                                    expires_at=now + timedelta(days=30))
    if in_guild:
        world["standin"].add_member(user.discord_id, discord_roles)
    return user


def fresh(user):
    return User.objects.select_related("role").get(pk=user.pk)


def assert_converged(standin, users, *, unmanaged=None):
    managed = managed_role_ids()
    for user in users:
        user = fresh(user)
        roles = standin.roles_of(user.discord_id)
        assert roles is not None
        assert roles & managed == member_wanted_roles(user=user), user.username
        if unmanaged is not None:
            assert roles - managed == unmanaged.get(user.pk, set()), user.username


def assert_within_limits(standin):
    assert not standin.violations(), standin.violations()
    assert standin.max_in_window(1.0) <= 50
    for retry_after, waited in standin.waits_after_429():
        assert waited >= retry_after - 0.01, (retry_after, waited)


def make_due():
    """Time passes: back-offs end, a halt ends."""
    RoleSyncRequest.objects.update(not_before=timezone.now())
    cache.delete(HALT_KEY)
    cache.delete_many([f"{FORBIDDEN_ROLE_PREFIX}{r}" for r in managed_role_ids()])


@pytest.mark.django_db
class TestConverge:
    def test_adds_and_removes_only_the_difference(self, world):
        standin = world["standin"]
        a = linked_member(world, 1, discord_roles=[UNMANAGED], subscribe=["loader"])
        b = linked_member(world, 2, discord_roles=[USER_ROLE, EXTRA_ROLE, UNMANAGED])
        c = linked_member(world, 3, discord_roles=[USER_ROLE, LOADER_ROLE],
                          subscribe=["loader"])
        for user in (a, b, c):
            role_sync_request(user_id=user.pk, reason="test")
        report = role_sync_drain()
        assert (report.synced, report.pending, report.stopped) == (3, 0, "")
        assert not RoleSyncRequest.objects.exists()
        assert standin.roles_of(a.discord_id) == {USER_ROLE, LOADER_ROLE, UNMANAGED}
        assert standin.roles_of(b.discord_id) == {USER_ROLE, UNMANAGED}
        assert standin.roles_of(c.discord_id) == {USER_ROLE, LOADER_ROLE}
        writes = standin.served(group="member.roles")
        # Per-role PUT/DELETE, never a whole-list PATCH; c was right already.
        assert sorted((s.method, s.path.rsplit("/", 1)[1]) for s in writes) == sorted(
            [("PUT", str(USER_ROLE)), ("PUT", str(LOADER_ROLE)), ("DELETE", str(EXTRA_ROLE))]
        )
        assert {s.method for s in standin.served()} <= {"GET", "PUT", "DELETE"}
        assert all(s.audit_reason == "ZalypaSPB role sync (test)" for s in writes)

    def test_manual_managed_roles_are_removed_unmanaged_kept(self, world):
        standin = world["standin"]
        user = linked_member(world, 1, discord_roles=[USER_ROLE, SUPPORT_ROLE, LOADER_ROLE,
                                                      UNMANAGED])
        role_sync_request(user_id=user.pk, reason="discord.update")
        role_sync_drain()
        assert standin.roles_of(user.discord_id) == {USER_ROLE, UNMANAGED}

    def test_ban_removes_every_managed_role_and_unban_restores(self, world, moderator):
        standin = world["standin"]
        user = linked_member(world, 1, discord_roles=[UNMANAGED], subscribe=["loader"])
        role_sync_request(user_id=user.pk, reason="link")
        role_sync_drain()
        assert standin.roles_of(user.discord_id) == {USER_ROLE, LOADER_ROLE, UNMANAGED}
        ban_create(actor=moderator, user=user, reason="spam")
        role_sync_drain()
        assert standin.roles_of(user.discord_id) == {UNMANAGED}
        ban_lift(actor=moderator, user=user)
        role_sync_drain()
        assert standin.roles_of(user.discord_id) == {USER_ROLE, LOADER_ROLE, UNMANAGED}

    def test_unlink_strips_the_old_discord_account(self, world, member):
        standin = world["standin"]
        old = DISCORD_BASE + 50
        standin.add_member(old, [USER_ROLE, UNMANAGED])
        link_code_consume(user=member, code=link_code_create(discord_id=old))
        discord_unlink(user=fresh(member))
        assert RoleSyncRequest.objects.get().reason == f"unlink:{old}"
        role_sync_drain()
        assert standin.roles_of(old) == {UNMANAGED}
        assert not RoleSyncRequest.objects.exists()

    def test_unlink_then_link_elsewhere_before_the_drain_handles_both(self, world, member):
        standin = world["standin"]
        old, new = DISCORD_BASE + 50, DISCORD_BASE + 51
        standin.add_member(old, [USER_ROLE])
        standin.add_member(new, [])
        link_code_consume(user=member, code=link_code_create(discord_id=old))
        discord_unlink(user=fresh(member))
        link_code_consume(user=fresh(member), code=link_code_create(discord_id=new))
        # The later "link" request must not erase the only record of the old account.
        assert RoleSyncRequest.objects.get().reason == f"unlink:{old}"
        role_sync_drain()
        assert standin.roles_of(old) == set()
        assert standin.roles_of(new) == {USER_ROLE}

    def test_two_unlinks_are_merged(self, world, member):
        standin = world["standin"]
        first, second = DISCORD_BASE + 50, DISCORD_BASE + 51
        for discord_id in (first, second):
            standin.add_member(discord_id, [USER_ROLE])
            link_code_consume(user=fresh(member), code=link_code_create(discord_id=discord_id))
            discord_unlink(user=fresh(member))
        assert RoleSyncRequest.objects.get().reason == f"unlink:{first},{second}"
        role_sync_drain()
        assert standin.roles_of(first) == standin.roles_of(second) == set()

    def test_a_request_during_the_sync_keeps_the_row(self, world, monkeypatch):
        standin = world["standin"]
        user = linked_member(world, 1)
        role_sync_request(user_id=user.pk, reason="first")
        original = discord_selectors.members_wanted_roles
        calls = []

        def wanted_then_changed(*, users):
            calls.append([u.pk for u in users])
            if len(calls) == 1:  # a ban or redeem commits while we talk to Discord
                role_sync_request(user_id=user.pk, reason="second")
            return original(users=users)

        monkeypatch.setattr(drain, "members_wanted_roles", wanted_then_changed)
        role_sync_drain(limit=1)
        row = RoleSyncRequest.objects.get()
        assert row.reason == "second" and row.not_before <= timezone.now()
        role_sync_drain()
        assert not RoleSyncRequest.objects.exists()
        assert standin.roles_of(user.discord_id) == {USER_ROLE}

    def test_unlinked_user_row_is_simply_done(self, world, member):
        role_sync_request(user_id=member.pk, reason="role")
        assert role_sync_drain().synced == 1
        assert not RoleSyncRequest.objects.exists()
        assert not world["standin"].served()

    def test_disabled_does_nothing(self, world, settings):
        user = linked_member(world, 1)
        role_sync_request(user_id=user.pk, reason="x")
        settings.DISCORD_ENABLED = False
        assert role_sync_drain().stopped == "disabled"
        assert RoleSyncRequest.objects.count() == 1 and not world["standin"].served()


@pytest.mark.django_db
class TestUnknownMember:
    def test_left_pending_until_the_bot_reports_the_join(self, world):
        standin = world["standin"]
        user = linked_member(world, 1, in_guild=False, subscribe=["loader"])
        role_sync_request(user_id=user.pk, reason="link")
        report = role_sync_drain()
        assert (report.synced, report.pending) == (0, 1)
        row = RoleSyncRequest.objects.get()
        assert "10007" in row.last_error
        assert row.not_before > timezone.now() + timedelta(days=7)
        assert role_sync_drain().synced == 0  # not retried meanwhile
        assert len(standin.served()) == 1
        standin.add_member(user.discord_id, [])
        bot_member_event(discord_id=user.discord_id, event="join")
        assert role_sync_drain().synced == 1
        assert standin.roles_of(user.discord_id) == {USER_ROLE, LOADER_ROLE}

    def test_member_leaving_mid_sync(self, world):
        standin = world["standin"]
        user = linked_member(world, 1, subscribe=["loader"])
        standin.script(Fault.unknown_member(), path="/roles/")
        role_sync_request(user_id=user.pk, reason="link")
        assert role_sync_drain().pending == 1
        assert "10007" in RoleSyncRequest.objects.get().last_error


@pytest.mark.django_db
class TestForbidden:
    def test_forbidden_role_is_skipped_and_reported_once(self, world):
        standin = world["standin"]
        users = [linked_member(world, n, subscribe=["loader"]) for n in range(1, 6)]
        for user in users:
            role_sync_request(user_id=user.pk, reason="link")
        standin.unmanageable.add(LOADER_ROLE)  # the bot's role is below the product role
        report = role_sync_drain()
        # The other roles and members carry on; the row is done (the reconcile retries).
        assert (report.synced, report.stopped) == (5, "")
        assert not RoleSyncRequest.objects.exists()
        writes = [s for s in standin.served(group="member.roles") if s.status == 403]
        assert len(writes) == 1  # the role is skipped after the first refusal
        for user in users:
            assert standin.roles_of(user.discord_id) == {USER_ROLE}
        errors = LogEntry.objects.filter(category="error")
        assert [e.action for e in errors] == ["discord.role_forbidden"]
        assert errors[0].data["code"] == 50013
        assert errors[0].data["role_id"] == str(LOADER_ROLE)
        assert cache.get(HALT_KEY) is None

        # Still misconfigured once the skip is over: one more probe, still one entry.
        make_due()
        roles_reconcile_all()
        assert role_sync_drain().synced == 5
        assert len([s for s in standin.served(group="member.roles") if s.status == 403]) == 2
        assert LogEntry.objects.filter(category="error").count() == 1

        # Fixed: the next reconcile converges everyone.
        standin.unmanageable.clear()
        make_due()
        roles_reconcile_all()
        assert role_sync_drain().synced == 5
        assert_converged(standin, users)
        assert_within_limits(standin)

    def test_bad_token_stops_the_drain(self, world, settings):
        standin = world["standin"]
        users = [linked_member(world, n) for n in range(1, 4)]
        for user in users:
            role_sync_request(user_id=user.pk, reason="link")
        settings.DISCORD_BOT_TOKEN = "revoked"
        assert role_sync_drain().stopped == "forbidden"
        assert len(standin.served()) == 1 and standin.served()[0].status == 401
        assert LogEntry.objects.filter(action="discord.role_sync_forbidden").count() == 1
        settings.DISCORD_BOT_TOKEN = standin.token
        make_due()
        assert role_sync_drain().synced == 3
        assert_converged(standin, users)

    def test_unknown_role_is_skipped_and_reported_once(self, world):
        standin = world["standin"]
        standin.guild_roles = {USER_ROLE, SUPPORT_ROLE, EXTRA_ROLE, UNMANAGED}
        users = [linked_member(world, n, subscribe=["loader"]) for n in range(1, 3)]
        for user in users:
            role_sync_request(user_id=user.pk, reason="link")
        assert role_sync_drain().synced == 2
        assert all(standin.roles_of(u.discord_id) == {USER_ROLE} for u in users)
        assert LogEntry.objects.filter(action="discord.unknown_role").count() == 1


@pytest.mark.django_db
class TestOutage:
    def test_all_5xx_then_recovery_loses_nothing(self, world):
        standin = world["standin"]
        users = [linked_member(world, n, discord_roles=[EXTRA_ROLE], subscribe=["loader"])
                 for n in range(1, 8)]
        for user in users:
            role_sync_request(user_id=user.pk, reason="link")
        standin.fail_all(503)
        report = role_sync_drain()
        assert report.stopped == "unavailable"
        # One member tried (with the client's retries), then the drain stopped.
        assert len(standin.served()) == 1 + rest.DEFAULT_RETRIES
        assert RoleSyncRequest.objects.count() == 7
        failed = RoleSyncRequest.objects.get(attempts=1)
        assert "503" in failed.last_error
        assert failed.not_before >= timezone.now() + timedelta(seconds=25)
        standin.fail_all(None)
        make_due()
        assert role_sync_drain().synced == 7
        assert not RoleSyncRequest.objects.exists()
        assert_converged(standin, users)

    def test_back_off_grows_exponentially(self, world):
        standin = world["standin"]
        user = linked_member(world, 1)
        role_sync_request(user_id=user.pk, reason="link")
        standin.fail_all(500)
        delays = []
        for _ in range(4):
            make_due()
            before = timezone.now()
            role_sync_drain()
            delays.append((RoleSyncRequest.objects.get().not_before - before).total_seconds())
        assert [round(d / 30) for d in delays] == [1, 2, 4, 8]
        assert RoleSyncRequest.objects.get().attempts == 4

    def test_server_down_then_up_loses_nothing(self, world):
        standin = world["standin"]
        users = [linked_member(world, n, subscribe=["extra"]) for n in range(1, 6)]
        for user in users:
            role_sync_request(user_id=user.pk, reason="redeem")
        standin.stop()
        assert role_sync_drain().stopped == "unavailable"
        assert RoleSyncRequest.objects.count() == 5
        standin.start()
        make_due()
        assert role_sync_drain().synced == 5
        assert_converged(standin, users)

    def test_slow_discord_times_out_and_is_retried_later(self, world):
        standin = world["standin"]
        user = linked_member(world, 1)
        role_sync_request(user_id=user.pk, reason="link")
        standin.slow_all(0.5)
        with discord_client(timeout=0.1, retries=1) as client:
            assert role_sync_drain(client=client).stopped == "unavailable"
        assert "Timeout" in RoleSyncRequest.objects.get().last_error
        standin.slow_all(0)
        make_due()
        assert role_sync_drain().synced == 1
        assert_converged(standin, [user])

    def test_login_check_skips_discord_during_an_outage(self, world):
        from core.services.rolesync import member_roles_check

        user = linked_member(world, 1)
        world["standin"].fail_all(503)
        role_sync_request(user_id=user.pk, reason="x")
        role_sync_drain()
        sent = len(world["standin"].served())
        assert member_roles_check(user=fresh(user)) is True  # queued without asking Discord
        assert len(world["standin"].served()) == sent


@pytest.mark.django_db
class TestLimits:
    def test_many_members_respect_bucket_and_global_limits(self, world):
        standin = world["standin"]
        standin.limits["member.roles"] = (5, 0.25)
        standin.limits["member.get"] = (40, 0.5)
        rng = random.Random(5)
        managed = [USER_ROLE, SUPPORT_ROLE, LOADER_ROLE, EXTRA_ROLE]
        users = [
            linked_member(world, n, discord_roles=rng.sample(managed, rng.randint(0, 3)),
                          subscribe=rng.sample(["loader", "extra"], rng.randint(0, 2)))
            for n in range(1, 41)
        ]
        for user in users:
            role_sync_request(user_id=user.pk, reason="reconcile")
        assert role_sync_drain().synced == 40
        assert_converged(standin, users)
        assert_within_limits(standin)

    def test_global_limit_in_a_fast_drain(self, world):
        standin = world["standin"]
        for group in ("member.roles", "member.get"):
            standin.limits[group] = (10_000, 1.0)
        users = [linked_member(world, n, discord_roles=[SUPPORT_ROLE], subscribe=["extra"])
                 for n in range(1, 31)]
        for user in users:
            role_sync_request(user_id=user.pk, reason="reconcile")
        assert role_sync_drain().synced == 30
        assert len(standin.served()) == 30 * 4  # GET, DELETE support, PUT user, PUT extra
        assert standin.max_in_window(1.0) <= 50
        assert_within_limits(standin)


FAULTS = [
    lambda r: Fault.ratelimit(round(r.uniform(0.05, 0.4), 3), where=r.choice(
        ["body", "both"])),
    lambda r: Fault.ratelimit(1.0, where="header"),
    lambda r: Fault.ratelimit(round(r.uniform(0.05, 0.3), 3), is_global=True),
    lambda r: Fault.server_error(r.choice([500, 502, 503, 504])),
    lambda r: Fault.slow(0.4),  # longer than the client's timeout below
    lambda r: Fault.slow(0.05),
    lambda r: Fault.disconnect(),
    lambda r: Fault.forbidden(),
    lambda r: Fault.unauthorized(),
    lambda r: Fault.unknown_member(),
]


@pytest.mark.django_db
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_any_script_of_failures_converges_within_limits(world, seed):
    """Random failures on random requests; drains repeated as time passes until done."""
    standin = world["standin"]
    standin.limits["member.roles"] = (6, 0.3)
    rng = random.Random(seed)
    managed = [USER_ROLE, SUPPORT_ROLE, LOADER_ROLE, EXTRA_ROLE]
    users = [
        linked_member(world, n,
                      discord_roles=[*rng.sample(managed, rng.randint(0, 4)), UNMANAGED],
                      subscribe=rng.sample(["loader", "extra"], rng.randint(0, 2)),
                      role=rng.choice(["user", "support"]))
        for n in range(1, 16)
    ]
    for user in users:
        role_sync_request(user_id=user.pk, reason="reconcile")
    for _ in range(25):
        path = rng.choice(["/roles/", "/members/[0-9]+$"])
        method = {"/roles/": rng.choice(["PUT", "DELETE", None])}.get(path)
        standin.script(*(rng.choice(FAULTS)(rng) for _ in range(rng.randint(1, 2))),
                       path=path, method=method)
    reconciled = False
    for _ in range(40):
        if not RoleSyncRequest.objects.exists():
            if reconciled:
                break
            # A role refused with 403/50013 is left to the periodic reconcile.
            make_due()
            roles_reconcile_all()
            reconciled = True
        make_due()
        with discord_client(timeout=0.2, max_wait=5) as client:
            role_sync_drain(client=client)
    assert not RoleSyncRequest.objects.exists()
    assert_converged(standin, users, unmanaged={u.pk: {UNMANAGED} for u in users})
    assert_within_limits(standin)
    assert any(s.status == 429 for s in standin.served())


@pytest.mark.django_db
class TestTriggers:
    def test_drain_queued_once_after_commit(self, world, django_capture_on_commit_callbacks):
        users = [linked_member(world, n) for n in range(1, 4)]
        with django_capture_on_commit_callbacks(execute=True) as callbacks, \
                transaction.atomic():
            for user in users:
                role_sync_request(user_id=user.pk, reason="role")
            assert OrmQ.objects.count() == 0  # not before commit
        assert callbacks
        assert OrmQ.objects.count() == 1  # a burst queues one drain
        assert OrmQ.objects.get().task["func"] == "core.tasks.rolesync_drain"

    def test_nothing_queued_while_discord_is_off(self, member, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            role_sync_request(user_id=member.pk, reason="role")
        assert not callbacks and OrmQ.objects.count() == 0
        assert RoleSyncRequest.objects.count() == 1  # the outbox row is kept regardless

    def test_rolled_back_change_queues_nothing(self, world, django_capture_on_commit_callbacks):
        user = linked_member(world, 1)

        def change_that_fails():
            with transaction.atomic():
                role_sync_request(user_id=user.pk, reason="role")
                raise RuntimeError

        with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
            change_that_fails()
        assert OrmQ.objects.count() == 0 and not RoleSyncRequest.objects.exists()

    def test_expired_subscriptions_are_queued_and_applied(self, world):
        standin = world["standin"]
        user = linked_member(world, 1, discord_roles=[USER_ROLE, LOADER_ROLE])
        now = timezone.now()
        Subscription.objects.create(user=user, product=world["loader"],
                                    started_at=now - timedelta(days=30),
                                    expires_at=now - timedelta(minutes=5))
        other = linked_member(world, 2, subscribe=["loader"])
        assert role_sync_expired(now=now) == 1
        assert role_sync_expired(now=now) == 0  # the mark moved on
        assert list(RoleSyncRequest.objects.values_list("user_id", "reason")) == [
            (user.pk, "expiry")]
        role_sync_drain()
        assert standin.roles_of(user.discord_id) == {USER_ROLE}
        assert other.pk not in RoleSyncRequest.objects.values_list("user_id", flat=True)

    def test_task_entry_points(self, world):
        from core import tasks

        user = linked_member(world, 1)
        role_sync_request(user_id=user.pk, reason="x")
        assert tasks.rolesync_drain() == 1
        assert world["standin"].roles_of(user.discord_id) == {USER_ROLE}
        world["standin"].add_member(DISCORD_BASE + 500, [LOADER_ROLE])  # nobody's account
        assert tasks.rolesync_reconcile() == 1
        assert world["standin"].roles_of(DISCORD_BASE + 500) == set()
        assert RoleSyncRequest.objects.get().reason == "reconcile"

    def test_deleted_account_loses_its_roles(self, world, admin,
                                             django_capture_on_commit_callbacks):
        from core import tasks
        from core.services.rolesync import member_strip_soon

        standin = world["standin"]
        user = linked_member(world, 1, discord_roles=[USER_ROLE, LOADER_ROLE, UNMANAGED])
        discord_id = user.discord_id
        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            member_strip_soon(discord_id=discord_id)
            user.delete()
        assert OrmQ.objects.get().task["args"] == (discord_id, "account deleted")
        assert tasks.rolesync_strip_member(discord_id) is True
        assert standin.roles_of(discord_id) == {UNMANAGED}

    def test_reported_edit_of_an_unlinked_member_strips_managed_roles(
            self, world, django_capture_on_commit_callbacks):
        from core import tasks

        standin = world["standin"]
        stranger = DISCORD_BASE + 600
        standin.add_member(stranger, [LOADER_ROLE, UNMANAGED])  # handed out by a moderator
        with django_capture_on_commit_callbacks(execute=True):
            # What the bot reports when it sees the edit; nothing to queue for an account.
            assert bot_member_event(discord_id=stranger, event="update") is False
        task = OrmQ.objects.get().task
        assert task["func"] == "core.tasks.rolesync_strip_member"
        assert tasks.rolesync_strip_member(*task["args"]) is True
        assert standin.roles_of(stranger) == {UNMANAGED}
        assert {s.audit_reason for s in standin.served(group="member.roles")} == {
            "ZalypaSPB role sync (not linked)"}

    def test_strip_skips_a_member_linked_again(self, world):
        from core.services.rolesync import member_roles_strip

        user = linked_member(world, 1, discord_roles=[USER_ROLE])
        assert member_roles_strip(discord_id=user.discord_id) is False
        assert world["standin"].roles_of(user.discord_id) == {USER_ROLE}

    def test_drains_one_at_a_time(self, world):
        user = linked_member(world, 1)
        role_sync_request(user_id=user.pk, reason="x")
        cache.add(LOCK_KEY, "another worker", timeout=60)
        assert role_sync_drain().stopped == "busy"
        assert RoleSyncRequest.objects.count() == 1 and not world["standin"].served()

    def test_schedules_are_declared(self):
        from django.utils.module_loading import import_string

        from core.schedules import SCHEDULES

        minutes = {s.name: s.minutes for s in SCHEDULES}
        assert minutes["zspb:rolesync-drain"] == 1
        assert minutes["zspb:webhooks"] == 1
        assert minutes["zspb:rolesync-reconcile"] == 360
        for spec in SCHEDULES:
            assert callable(import_string(spec.func))


@pytest.mark.django_db
class TestReconcile:
    def test_queues_every_linked_member_in_batches(self, world, member):
        users = [linked_member(world, n) for n in range(1, 6)]
        assert roles_reconcile_all(batch_size=2) == 5
        assert set(RoleSyncRequest.objects.values_list("user_id", flat=True)) == {
            u.pk for u in users}

    def test_keeps_pending_reasons_and_reprobes_backed_off_rows(self, world):
        a = linked_member(world, 1)
        b = linked_member(world, 2)
        role_sync_request(user_id=a.pk, reason=f"unlink:{DISCORD_BASE + 99}")
        role_sync_request(user_id=b.pk, reason="link")
        RoleSyncRequest.objects.filter(user=b).update(
            not_before=timezone.now() + timedelta(days=30))
        roles_reconcile_all()
        assert RoleSyncRequest.objects.get(user=a).reason == f"unlink:{DISCORD_BASE + 99}"
        assert RoleSyncRequest.objects.get(user=b).not_before <= timezone.now()

    def test_converges_drift_nobody_reported(self, world):
        standin = world["standin"]
        users = [linked_member(world, n, subscribe=["loader"]) for n in range(1, 4)]
        # Drift: roles edited while the bot was offline; no outbox row exists.
        standin.add_member(users[0].discord_id, [SUPPORT_ROLE])
        roles_reconcile_all()
        role_sync_drain()
        assert_converged(standin, users)

    def test_strips_managed_roles_from_members_nobody_is_linked_to(self, world, monkeypatch):
        standin = world["standin"]
        linked = linked_member(world, 1, discord_roles=[USER_ROLE, UNMANAGED])
        orphans = [DISCORD_BASE + 100 + n for n in range(5)]
        for discord_id in orphans:
            standin.add_member(discord_id, [LOADER_ROLE, UNMANAGED])
        standin.add_member(DISCORD_BASE + 200, [UNMANAGED])  # holds nothing managed
        monkeypatch.setattr(reconcile, "ORPHAN_PAGE", 2)
        report = roles_strip_orphans()
        assert report.stripped == 5 and report.next_after is None
        assert all(standin.roles_of(d) == {UNMANAGED} for d in orphans)
        assert standin.roles_of(linked.discord_id) == {USER_ROLE, UNMANAGED}
        assert standin.roles_of(DISCORD_BASE + 200) == {UNMANAGED}

    def test_orphan_scan_resumes_where_it_stopped(self, world, monkeypatch):
        standin = world["standin"]
        for n in range(4):
            standin.add_member(DISCORD_BASE + 100 + n, [LOADER_ROLE])
        monkeypatch.setattr(reconcile, "ORPHAN_PAGE", 1)
        report = roles_strip_orphans(time_budget=0.0)
        assert report.next_after == 0 and report.stripped == 0
        report = roles_strip_orphans(after=DISCORD_BASE + 101)
        assert report.stripped == 2
        assert standin.roles_of(DISCORD_BASE + 100) == {LOADER_ROLE}

    def test_missing_member_intent_is_reported_once(self, world):
        standin = world["standin"]
        standin.script(Fault(status=403, code=50001, message="Missing Access"),
                       Fault(status=403, code=50001, message="Missing Access"),
                       path="/members$")
        assert roles_strip_orphans().stopped == "forbidden"
        assert roles_strip_orphans().stopped == "forbidden"
        assert LogEntry.objects.filter(action="discord.member_list_forbidden").count() == 1
        assert cache.get(HALT_KEY) is None  # role sync itself carries on


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_drains_apply_each_change_once(world):
    standin = world["standin"]
    users = [linked_member(world, n, subscribe=["loader"]) for n in range(1, 21)]
    for user in users:
        role_sync_request(user_id=user.pk, reason="link")
    barrier = threading.Barrier(4)
    reports = []

    def drain():
        try:
            barrier.wait(timeout=10)
            # Each as if in another process: the cache lock is bypassed, leases still hold.
            cache.delete(LOCK_KEY)
            reports.append(role_sync_drain())
        finally:
            connection.close()

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sum(r.synced for r in reports) == 20
    assert not RoleSyncRequest.objects.exists()
    assert_converged(standin, users)
    puts = standin.served(group="member.roles", method="PUT")
    assert len(puts) == len({s.path for s in puts}) == 40  # no role applied twice
    assert_within_limits(standin)
