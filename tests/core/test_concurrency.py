"""Single-use invariants under real concurrency on PostgreSQL.

Each scenario releases 16 threads at once (a barrier), each on its own connection, and is
repeated 20 times. SQLite ignores row locks, so these tests only run on PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection

from core.errors import InviteInvalid, InviteQuotaExceeded, KeyUnavailable, LinkCodeInvalid
from core.models import Invite, LicenseKey, Subscription, User
from core.services.discord_link import link_code_consume, link_code_create
from core.services.invites import invite_create
from core.services.keys import key_redeem, keys_generate
from core.services.users import user_register
from tests.conftest import run_concurrently
from tests.factories import UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

REPEATS = 20
THREADS = 16


def _split(results):
    ok = [r for r in results if not isinstance(r, Exception)]
    errors = [r for r in results if isinstance(r, Exception)]
    return ok, errors


def test_threads_really_use_separate_connections():
    assert connection.vendor == "postgresql"
    # Each thread keeps its connection until all four have theirs: a thread that finished
    # first would hand its connection back to the pool, and the next could be given it.
    held = threading.Barrier(4)

    def pid_while_all_hold(index: int) -> int:
        pid = _backend_pid()
        held.wait(timeout=30)
        return pid

    pids = run_concurrently(pid_while_all_hold, threads=4)
    assert len(set(pids)) == 4, pids


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def test_one_key_redeemed_once(roles, moderator, product):
    users = [UserFactory.create(role=roles["user"]) for _ in range(THREADS)]
    for _ in range(REPEATS):
        code = keys_generate(actor=moderator, product=product, duration=timedelta(days=1),
                             count=1).codes[0]
        results = run_concurrently(lambda i, code=code: key_redeem(user=users[i], code=code))
        ok, errors = _split(results)
        assert len(ok) == 1, errors
        assert all(isinstance(e, KeyUnavailable) for e in errors), errors
        key = LicenseKey.objects.latest("pk")
        assert key.status == "redeemed" and key.redeemed_by == ok[0].user
    # one extension per successful redeem, never more
    total = sum((s.expires_at - s.started_at for s in Subscription.objects.all()), timedelta())
    assert timedelta(days=REPEATS) - timedelta(minutes=5) <= total <= timedelta(days=REPEATS)
    assert LicenseKey.objects.filter(status="redeemed").count() == REPEATS


def test_one_user_sixteen_keys_extend_once_each(member, moderator, product):
    """The same member redeeming 16 different keys at once: every extension counts."""
    for repeat in range(1, REPEATS + 1):
        codes = keys_generate(actor=moderator, product=product, duration=timedelta(hours=1),
                              count=THREADS).codes
        results = run_concurrently(lambda i, codes=codes: key_redeem(user=member, code=codes[i]))
        ok, errors = _split(results)
        assert not errors and len(ok) == THREADS
        sub = Subscription.objects.get(user=member, product=product)
        span = sub.expires_at - sub.started_at
        assert span >= timedelta(hours=THREADS * repeat)
        assert span < timedelta(hours=THREADS * repeat, minutes=5)


def test_quota_of_two_gives_two_invites(roles):
    for _ in range(REPEATS):
        user = UserFactory.create(role=roles["user"])
        results = run_concurrently(lambda i, user=user: invite_create(creator=user))
        ok, errors = _split(results)
        assert len(ok) == 2, errors
        assert all(isinstance(e, InviteQuotaExceeded) for e in errors), errors
        assert Invite.objects.filter(created_by=user).count() == 2


def test_one_invite_one_account(admin):
    for repeat in range(REPEATS):
        invite = invite_create(creator=admin)
        results = run_concurrently(
            lambda i, invite=invite, repeat=repeat: user_register(
                invite_code=invite.code, username=f"r{repeat}t{i}",
                password="a fine passphrase", ip=f"10.{repeat}.{i}.1",
            )
        )
        ok, errors = _split(results)
        assert len(ok) == 1, errors
        assert all(isinstance(e, InviteInvalid) for e in errors), errors
        assert User.objects.filter(username__startswith=f"r{repeat}t").count() == 1


def test_one_ip_one_account_across_invites(admin, settings):
    for repeat in range(REPEATS):
        invites = [invite_create(creator=admin) for _ in range(THREADS)]
        results = run_concurrently(
            lambda i, invites=invites, repeat=repeat: user_register(
                invite_code=invites[i].code, username=f"ip{repeat}t{i}",
                password="a fine passphrase", ip=f"192.0.2.{repeat}",
            )
        )
        ok, _ = _split(results)
        assert len(ok) == 1


def test_one_link_code_one_link(roles):
    for repeat in range(REPEATS):
        users = [UserFactory.create(role=roles["user"]) for _ in range(THREADS)]
        discord_id = 10**17 + repeat
        code = link_code_create(discord_id=discord_id)
        results = run_concurrently(
            lambda i, code=code, users=users: link_code_consume(user=users[i], code=code)
        )
        ok, errors = _split(results)
        assert len(ok) == 1, errors
        assert all(isinstance(e, LinkCodeInvalid) for e in errors), errors
        assert User.objects.filter(discord_id=discord_id).count() == 1


def test_harness_catches_a_naive_check_then_set(roles, moderator, product):
    """Control: the same barrier lets a read-then-write redeem succeed many times.

    If this ever stops failing the naive way, the race tests above prove nothing.
    """
    from django.utils import timezone

    users = [UserFactory.create(role=roles["user"]) for _ in range(THREADS)]
    keys_generate(actor=moderator, product=product, duration=timedelta(days=1), count=1)
    key_id = LicenseKey.objects.get().pk

    def naive_redeem(i: int) -> int:
        key = LicenseKey.objects.get(pk=key_id)
        if key.status != LicenseKey.Status.FREE:
            raise KeyUnavailable()
        time.sleep(0.05)  # widen the window between the check and the write
        key.status = LicenseKey.Status.REDEEMED
        key.redeemed_by = users[i]
        key.redeemed_at = timezone.now()
        key.save()
        return i

    ok, _ = _split(run_concurrently(naive_redeem))
    assert len(ok) > 1
