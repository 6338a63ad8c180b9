"""A worker killed outright (SIGKILL to its whole process group) in the middle of a job loses
nothing and repeats nothing once the job runs again.

Each job runs as a django-q2 worker runs it: the task function of core/tasks.py in a process
of its own (tests/reliability/jobrunner.py) against this test's PostgreSQL database, the
shared Redis cache and the loopback Discord stand-in. The job is caught mid-way at a known
point (the stand-in answers slowly, or a chunk pauses inside its transaction), killed, then run
again as the broker would re-deliver it or the schedule would start it a minute later. The one
time compression: role-sync leases last 1 s instead of 2 min (a killed drain's rows come back
after the lease).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from core.models import (
    Ban,
    KeyGenerationJob,
    LicenseKey,
    LogEntry,
    Role,
    RoleSyncRequest,
    Subscription,
    User,
)
from core.models.webhooks import WebhookOutbox
from core.selectors.discord import managed_role_ids, member_wanted_roles
from core.services.logs import Category, log_event
from core.services.realtime import member_group
from core.services.webhooks import journal_line
from tests.deploy.test_worker_stop import _env as worker_env
from tests.discord_standin import DiscordStandin
from tests.factories import ProductFactory, UserFactory

BASE = Path(settings.BASE_DIR)
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

USER_ROLE = 111_000_000_000_000_001
LOADER_ROLE = 222_000_000_000_000_001
EXTRA_ROLE = 222_000_000_000_000_002
UNMANAGED = 999_000_000_000_000_001
DISCORD_BASE = 333_000_000_000_000_000
LEASE_SECONDS = 1


@pytest.fixture
def job_env(discord_standin: DiscordStandin) -> dict[str, str]:
    standin = discord_standin
    env = worker_env()
    env.update({
        "DISCORD_API_BASE": standin.api_base, "DISCORD_BOT_TOKEN": standin.token,
        "DISCORD_GUILD_ID": str(standin.guild_id),
        "ZSPB_TEST_SET": json.dumps({"core.services.rolesync.drain.LEASE": LEASE_SECONDS}),
    })
    for journal, url in settings.WEBHOOK_URLS.items():
        env[f"WEBHOOK_{journal.upper()}_URL"] = str(url)
    return env


class Job:
    """One run of a task function in its own process group."""

    def __init__(self, env: dict[str, str], log: Path, func: str, *args: int,
                 slow: dict[str, float] | None = None, sets: dict[str, Any] | None = None
                 ) -> None:
        env = dict(env)
        if slow:
            env["ZSPB_TEST_SLOW"] = json.dumps(slow)
        if sets:
            env["ZSPB_TEST_SET"] = json.dumps({**json.loads(env["ZSPB_TEST_SET"]), **sets})
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.jobrunner", func, *map(str, args)],
            cwd=BASE, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
            start_new_session=True)

    def kill_when(self, ready: Callable[[], bool], *, timeout: float = 60) -> None:
        """SIGKILL the whole group as soon as `ready()`; the job must not have ended before."""
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.process.poll() is None, f"the job ended first:\n{self.output()}"
            assert time.monotonic() < deadline, f"not ready in {timeout} s:\n{self.output()}"
            time.sleep(0.01)
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        assert self.process.returncode == -signal.SIGKILL

    def finish(self, *, timeout: float = 60) -> str:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            raise
        assert self.process.returncode == 0, self.output()
        return self.output()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def run(job_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Job]]:
    jobs: list[Job] = []

    def start(func: str, *args: int, **kwargs: Any) -> Job:
        job = Job(job_env, tmp_path / f"job{len(jobs)}.log", func, *args, **kwargs)
        jobs.append(job)
        return job

    yield start
    for job in jobs:
        if job.process.poll() is None:
            os.killpg(job.process.pid, signal.SIGKILL)
            job.process.wait(timeout=10)


@pytest.fixture
def world(discord_standin: DiscordStandin, roles: dict[str, Role]) -> dict[str, Any]:
    Role.objects.filter(key="user").update(discord_role_id=USER_ROLE)
    return {"standin": discord_standin,
            "loader": ProductFactory.create(slug="loader", discord_role_id=LOADER_ROLE),
            "extra": ProductFactory.create(slug="extra", discord_role_id=EXTRA_ROLE),
            "roles": roles}


def linked(world: dict[str, Any], n: int, *, discord_roles: tuple[int, ...] = (),
           subscribe: tuple[str, ...] = (), expired: bool = False) -> User:
    user = UserFactory.create(role=world["roles"]["user"], discord_id=DISCORD_BASE + n)
    now = timezone.now()
    for slug in subscribe:
        # An expired subscription ended a minute ago: within the expiry job's look-back.
        ends = now - timedelta(minutes=1) if expired else now + timedelta(days=30)
        Subscription.objects.create(user=user, product=world[slug],
                                    started_at=now - timedelta(days=30), expires_at=ends)
    world["standin"].add_member(user.discord_id, {*discord_roles, UNMANAGED})
    return user


def assert_converged(standin: DiscordStandin, users: list[User]) -> None:
    managed = managed_role_ids()
    for user in users:
        user = User.objects.select_related("role").get(pk=user.pk)
        assert user.discord_id is not None
        roles = standin.roles_of(user.discord_id)
        assert roles is not None
        assert roles & managed == member_wanted_roles(user=user), user.username
        assert UNMANAGED in roles


def test_role_sync_drain_killed_mid_way(world: dict[str, Any], run: Callable[..., Job]) -> None:
    standin = world["standin"]
    users = [linked(world, n, discord_roles=(EXTRA_ROLE,), subscribe=("loader",))
             for n in range(1, 21)]
    for user in users:  # what a role edit does: one outbox row per member
        RoleSyncRequest.objects.create(user=user, reason="reconcile")
    standin.slow_all(0.05)
    # 20 members x (read, remove extra, add user, add loader): caught after 30 requests.
    run("core.tasks.rolesync_drain").kill_when(lambda: len(standin.served()) >= 30)
    assert RoleSyncRequest.objects.exists()
    standin.slow_all(0.0)
    time.sleep(LEASE_SECONDS)  # the killed drain's leases run out
    run("core.tasks.rolesync_drain").finish()
    assert not RoleSyncRequest.objects.exists()
    assert_converged(standin, users)
    assert not standin.violations()
    assert standin.max_in_window(1.0) <= 50


def test_webhook_delivery_killed_mid_way_posts_no_line_twice(
    world: dict[str, Any], run: Callable[..., Job],
) -> None:
    standin = world["standin"]
    for n in range(150):
        log_event(category=Category.USER, action="test.line", data={"n": n})
    entries = list(LogEntry.objects.filter(action="test.line").order_by("pk"))
    assert WebhookOutbox.objects.filter(journal="user").count() == 150
    standin.slow_all(0.3)
    # Killed while Discord handles the third message: it is posted, but never confirmed.
    run("core.tasks.deliver_webhooks").kill_when(
        lambda: len(standin.served(group="webhook")) >= 3)
    time.sleep(0.5)  # the stand-in finishes handling the orphaned request
    standin.slow_all(0.0)
    assert len(standin.messages("user")) == 3
    run("core.tasks.deliver_webhooks").finish()

    contents = [m.content for m in standin.messages("user")]
    posted = "\n".join(contents)
    counts = {e.pk: posted.count(journal_line(e)) for e in entries}
    assert max(counts.values()) == 1, "a line was posted twice"
    assert min(counts.values()) == 1  # the orphaned message did reach the channel
    notes = [c for c in contents if "a delivery was interrupted" in c]
    assert len(notes) == 1, contents[:2]
    third = standin.messages("user")[2].content
    named = [e.pk for e in entries if journal_line(e) in third]
    assert f"{len(named)} lines (journal entries #{named[0]} to #{named[-1]})" in notes[0]
    assert not WebhookOutbox.objects.exists()
    assert all(not m.pings for m in standin.messages("user"))


def test_expiry_jobs_killed_mid_way_miss_nothing(
    world: dict[str, Any], run: Callable[..., Job],
) -> None:
    standin = world["standin"]
    # Subscriptions that ended a minute ago: the product role must go.
    lapsed = [linked(world, n, discord_roles=(USER_ROLE, LOADER_ROLE), subscribe=("loader",),
                     expired=True) for n in range(1, 16)]
    # The role-sync drain task first queues the lapsed subscriptions, then applies them.
    standin.slow_all(0.05)
    run("core.tasks.rolesync_drain").kill_when(
        lambda: len(standin.served(group="member.roles")) >= 6)
    standin.slow_all(0.0)
    time.sleep(LEASE_SECONDS)
    run("core.tasks.rolesync_drain").finish()
    assert_converged(standin, lapsed)
    for user in lapsed:
        assert standin.roles_of(user.discord_id) == {USER_ROLE, UNMANAGED}

    # Timed bans that have ended: each lifted once, journaled once, its role sync queued.
    banned = [UserFactory.create(role=world["roles"]["user"], is_active=False)
              for _ in range(8)]
    ended = timezone.now() - timedelta(seconds=30)
    for user in banned:
        Ban.objects.create(user=user, reason="test", created_at=ended - timedelta(hours=1),
                           ends_at=ended)
    # Each ban is lifted in its own transaction; the pause falls inside it.
    job = run("core.tasks.expire_bans", slow={"core.services.bans.role_sync_request": 0.3})
    job.kill_when(lambda: Ban.objects.filter(lifted_at__isnull=False).count() >= 3)
    before = Ban.objects.filter(lifted_at__isnull=False).count()
    assert 3 <= before < 8
    assert f"result: {8 - before}" in run("core.tasks.expire_bans").finish()
    assert not Ban.objects.filter(lifted_at__isnull=True).exists()
    assert User.objects.filter(pk__in=[u.pk for u in banned], is_active=True).count() == 8
    lifted = LogEntry.objects.filter(action="user.ban_expired")
    assert sorted(int(e.target_id or 0) for e in lifted) == sorted(u.pk for u in banned)
    assert RoleSyncRequest.objects.filter(user__in=banned).count() == 8


class Listener(threading.Thread):
    """An open member page for each of `user_ids`: collects the events pushed to them."""

    def __init__(self, user_ids: list[int]) -> None:
        super().__init__(daemon=True)
        self.user_ids = user_ids
        self.received: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        asyncio.run(self._listen())

    async def _listen(self) -> None:
        layer = get_channel_layer()
        assert layer is not None
        channel = await layer.new_channel()
        for user_id in self.user_ids:
            await layer.group_add(member_group(user_id), channel)
        self.ready.set()
        while not self.stop.is_set():
            try:
                self.received.append(await asyncio.wait_for(layer.receive(channel), 1.0))
            except asyncio.TimeoutError:
                continue

    def pushed(self) -> list[str]:
        return [m["data"]["expires_at"] for m in self.received
                if m.get("event") == "subscription_expired"]


def test_expiry_push_killed_mid_way_is_completed_at_once(
    world: dict[str, Any], run: Callable[..., Job],
) -> None:
    if "RedisChannelLayer" not in settings.CHANNEL_LAYERS["default"]["BACKEND"]:
        pytest.skip("pushes cross processes only through Redis (REDIS_URL)")
    ended = timezone.now() - timedelta(seconds=20)
    users = [UserFactory.create(role=world["roles"]["user"]) for _ in range(10)]
    subscriptions = [Subscription.objects.create(
        user=user, product=world["loader"], started_at=ended - timedelta(days=30),
        expires_at=ended - timedelta(seconds=n)) for n, user in enumerate(users)]
    listener = Listener([u.pk for u in users])
    listener.start()
    assert listener.ready.wait(10)
    try:
        # Pushed two at a time, each pair after a pause: killed after the first four.
        job = run("core.tasks.notify_expired_subscriptions",
                  sets={"core.services.realtime.EXPIRED_BATCH": 2},
                  slow={"core.services.realtime._send_all": 0.3})
        job.kill_when(lambda: len(listener.pushed()) >= 4)
        # Run again at once: the killed run's lock (300 s) does not hold it up.
        assert "result: 10" in run("core.tasks.notify_expired_subscriptions").finish()
        deadline = time.monotonic() + 10
        while len(set(listener.pushed())) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        listener.stop.set()
        listener.join(timeout=5)
    # Every end reached the member's page; those before the kill may come twice (a push
    # is a notice: at least once).
    assert sorted(set(listener.pushed())) == sorted(
        s.expires_at.isoformat() for s in subscriptions)


def test_key_generation_killed_mid_way_finishes_with_the_right_count(
    roles: dict[str, Role], run: Callable[..., Job],
) -> None:
    moderator = UserFactory.create(username="moderator", role=roles["moderator"])
    product = ProductFactory.create(slug="loader")
    job = KeyGenerationJob.objects.create(product=product, duration=timedelta(days=30),
                                          count=1500, created_by=moderator)
    chunks = {"core.services.keys.INSERT_BATCH": 100}
    # Each chunk pauses inside its transaction (row lock held, keys not yet inserted).
    first = run("core.tasks.run_key_generation_job", job.pk, sets=chunks,
                slow={"core.services.keys._new_keys": 0.2})

    def progress() -> int:
        return KeyGenerationJob.objects.values_list("done", flat=True).get(pk=job.pk)

    first.kill_when(lambda: progress() >= 300)
    killed_at = progress()
    assert 300 <= killed_at < 1500
    # Progress is what was committed: the chunk in flight left no keys behind.
    assert LicenseKey.objects.filter(batch=job.batch).count() == killed_at
    run("core.tasks.run_key_generation_job", job.pk, sets=chunks).finish()
    job.refresh_from_db()
    assert (job.status, job.done, job.count) == (KeyGenerationJob.Status.DONE, 1500, 1500)
    keys = LicenseKey.objects.filter(batch=job.batch)
    assert keys.count() == 1500
    assert keys.values("code_digest").distinct().count() == 1500
    assert LogEntry.objects.filter(action="keys.generate").count() == 1
