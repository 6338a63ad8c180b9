"""The REST client against the loopback stand-in: endpoints, errors, rate limits, retries."""

from __future__ import annotations

import math
import threading
import time

import pytest
from django.core.cache import cache

from core.discord import limits as discord_limits
from core.discord import rest
from core.discord.rest import (
    DiscordAuthError,
    DiscordClient,
    DiscordNotFound,
    DiscordRateLimited,
    DiscordUnavailable,
    discord_client,
)
from tests.discord_standin import Fault

MEMBER = 100_000_000_000_000_001
ROLE_A = 500_000_000_000_000_001
ROLE_B = 500_000_000_000_000_002


@pytest.fixture
def standin(discord_standin):
    discord_standin.add_member(MEMBER, [ROLE_A])
    return discord_standin


@pytest.fixture
def client(standin):
    with discord_client() as c:
        yield c


def assert_waited_retry_after(standin):
    pairs = standin.waits_after_429()
    assert pairs, "expected at least one 429"
    for retry_after, waited in pairs:
        assert waited >= retry_after - 0.01, (retry_after, waited)


class TestEndpoints:
    def test_member_get(self, client, standin):
        member = client.member_get(guild_id=standin.guild_id, user_id=MEMBER)
        assert member.user_id == MEMBER and member.roles == {ROLE_A}
        served = standin.served()[-1]
        assert served.authorization == f"Bot {standin.token}"

    def test_role_add_and_remove_with_audit_reason(self, client, standin):
        client.member_role_add(guild_id=standin.guild_id, user_id=MEMBER, role_id=ROLE_B,
                               reason="sync (ключ redeemed)")
        assert standin.roles_of(MEMBER) == {ROLE_A, ROLE_B}
        client.member_role_remove(guild_id=standin.guild_id, user_id=MEMBER, role_id=ROLE_A,
                                  reason="sync (ban)")
        assert standin.roles_of(MEMBER) == {ROLE_B}
        put, delete = standin.served(group="member.roles")
        assert (put.method, delete.method) == ("PUT", "DELETE")
        assert put.audit_reason == "sync (ключ redeemed)" and delete.audit_reason == "sync (ban)"

    def test_guild_members_pages_by_id(self, client, standin):
        for offset in range(1, 5):
            standin.add_member(MEMBER + offset)
        page = client.guild_members(guild_id=standin.guild_id, after=MEMBER + 1, limit=2)
        assert [m.user_id for m in page] == [MEMBER + 2, MEMBER + 3]

    def test_unknown_member(self, client, standin):
        with pytest.raises(DiscordNotFound) as info:
            client.member_get(guild_id=standin.guild_id, user_id=MEMBER + 99)
        assert (info.value.status, info.value.code) == (404, rest.UNKNOWN_MEMBER)

    def test_missing_permissions(self, client, standin):
        standin.unmanageable.add(ROLE_B)
        with pytest.raises(DiscordAuthError) as info:
            client.member_role_add(guild_id=standin.guild_id, user_id=MEMBER, role_id=ROLE_B,
                                   reason="sync")
        assert (info.value.status, info.value.code) == (403, rest.MISSING_PERMISSIONS)

    def test_bad_token_is_refused(self, standin, settings):
        settings.DISCORD_BOT_TOKEN = "wrong"
        with discord_client() as c, pytest.raises(DiscordAuthError) as info:
            c.member_get(guild_id=standin.guild_id, user_id=MEMBER)
        assert info.value.status == 401

    def test_webhook_execute_suppresses_mentions_and_sends_no_token(self, client, standin):
        url = standin.webhook_url("user")
        client.webhook_execute(url=url, content="hello @everyone <@1> <@&2>", username="Z")
        (message,) = standin.messages("user")
        assert message.allowed_mentions == {"parse": []} and message.pings == []
        assert standin.served(group="webhook")[-1].authorization is None

    def test_only_loopback_is_reachable_in_tests(self, standin):
        outside = DiscordClient(api_base="https://discord.com/api/v10", token="x", retries=0)
        with pytest.raises(AssertionError, match=r"discord\.com"):
            outside.member_get(guild_id=1, user_id=2)


class TestRateLimits:
    def test_429_retry_after_in_body_is_waited(self, client, standin):
        standin.script(Fault.ratelimit(0.3, where="body"), path="/members/")
        member = client.member_get(guild_id=standin.guild_id, user_id=MEMBER)
        assert member.roles == {ROLE_A}
        assert_waited_retry_after(standin)
        assert not standin.violations()

    def test_429_retry_after_header_only_is_waited(self, client, standin):
        standin.script(Fault.ratelimit(1.0, where="header"), path="/roles/")
        client.member_role_add(guild_id=standin.guild_id, user_id=MEMBER, role_id=ROLE_B,
                               reason="sync")
        assert standin.roles_of(MEMBER) == {ROLE_A, ROLE_B}
        ((retry_after, waited),) = standin.waits_after_429()
        assert retry_after == 1.0 and waited >= 1.0

    def test_global_429_holds_every_route_and_every_worker(self, client, standin):
        standin.script(Fault.ratelimit(0.5, is_global=True), path="/roles/")
        other = discord_client()  # another worker: shares the limits only through the cache

        def other_worker():
            # Starts once the first worker has taken the global 429 in.
            deadline = time.monotonic() + 5
            while cache.get(f"{discord_limits.CACHE_PREFIX}:global-until") is None:
                assert time.monotonic() < deadline
                time.sleep(0.005)
            other.member_get(guild_id=standin.guild_id, user_id=MEMBER)

        thread = threading.Thread(target=other_worker)
        thread.start()
        client.member_role_add(guild_id=standin.guild_id, user_id=MEMBER, role_id=ROLE_B,
                               reason="sync")
        thread.join(timeout=10)
        other.close()
        limited = next(s for s in standin.served() if s.status == 429)
        after = [s for s in standin.served() if s.received > limited.sent]
        assert len(after) == 2  # the retried PUT and the other worker's GET
        assert all(s.received - limited.sent >= 0.49 for s in after)
        assert_waited_retry_after(standin)

    def test_bucket_headers_are_honoured_without_a_429(self, client, standin):
        standin.limits["member.get"] = (3, 0.4)
        started = time.monotonic()
        for _ in range(10):
            client.member_get(guild_id=standin.guild_id, user_id=MEMBER)
        assert not standin.violations()
        # 10 requests at 3 per 0.4 s need at least three resets.
        assert time.monotonic() - started >= 1.1

    def test_bucket_state_is_shared_between_workers(self, standin):
        standin.limits["member.get"] = (2, 0.5)
        clients = [discord_client() for _ in range(3)]
        for i in range(9):
            clients[i % 3].member_get(guild_id=standin.guild_id, user_id=MEMBER)
        for c in clients:
            c.close()
        assert not standin.violations()

    def test_bucket_holds_with_concurrent_workers(self, standin):
        standin.limits["member.roles"] = (5, 0.3)
        errors = []

        def worker(n):
            try:
                with discord_client() as c:
                    for i in range(12):
                        c.member_role_add(guild_id=standin.guild_id, user_id=MEMBER,
                                          role_id=ROLE_B + n * 100 + i, reason="sync")
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors
        assert len(standin.roles_of(MEMBER)) == 1 + 48
        assert not standin.violations(), standin.violations()

    def test_global_limit_holds_across_threads(self, standin):
        standin.limits["member.get"] = (10_000, 1.0)
        errors = []

        def worker():
            try:
                with discord_client() as c:
                    for _ in range(25):
                        c.member_get(guild_id=standin.guild_id, user_id=MEMBER)
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not errors
        assert len(standin.served()) == 100
        assert standin.max_in_window(1.0) <= 50
        assert not standin.violations()
        assert time.monotonic() - started >= 1.9  # 100 requests at <= 48 per second

    def test_a_429_shorter_than_its_window_does_not_end_the_window(self, client, standin):
        # The stand-in's scripted 429 says 0 left, reset after 0.05 s, under the X-RateLimit-
        # Reset of a window that holds one request and runs for 1 s. Taken as the window's
        # end, the next window's allowance of 6 went into this one: the 6th was refused.
        standin.limits["member.roles"] = (6, 1.0)
        client.member_role_add(guild_id=standin.guild_id, user_id=MEMBER, role_id=ROLE_B,
                               reason="sync")
        standin.script(Fault.ratelimit(0.05), path="/roles/")
        for n in range(1, 9):
            client.member_role_add(guild_id=standin.guild_id, user_id=MEMBER,
                                   role_id=ROLE_B + n, reason="sync")
        assert not standin.violations(), standin.violations()
        assert_waited_retry_after(standin)

    def test_a_wait_longer_than_allowed_raises_instead_of_sleeping(self, standin):
        standin.script(Fault.ratelimit(5.0), path="/members/")
        with discord_client(max_wait=0.5) as c:
            started = time.monotonic()
            with pytest.raises(DiscordRateLimited) as info:
                c.member_get(guild_id=standin.guild_id, user_id=MEMBER)
        assert time.monotonic() - started < 1.0
        assert info.value.retry_after == pytest.approx(5.0, abs=0.1)

    def test_invalid_request_budget_stops_sending(self, client, standin, monkeypatch):
        monkeypatch.setattr(discord_limits, "INVALID_BUDGET", 3)
        standin.unmanageable.add(ROLE_B)
        for _ in range(3):
            with pytest.raises(DiscordAuthError):
                client.member_role_add(guild_id=standin.guild_id, user_id=MEMBER,
                                       role_id=ROLE_B, reason="sync")
        sent = len(standin.served())
        with pytest.raises(DiscordUnavailable, match="budget"):
            client.member_get(guild_id=standin.guild_id, user_id=MEMBER)
        assert len(standin.served()) == sent


class TestFailures:
    def test_5xx_is_retried_with_backoff(self, client, standin, monkeypatch):
        monkeypatch.setattr(rest, "BACKOFF_BASE", 0.1)
        standin.script(Fault.server_error(502), Fault.server_error(500), path="/members/")
        assert client.member_get(guild_id=standin.guild_id, user_id=MEMBER).roles == {ROLE_A}
        first, second, third = standin.served()
        assert second.received - first.sent >= 0.1
        assert third.received - second.sent >= 0.2

    def test_persistent_5xx_raises_unavailable(self, client, standin, monkeypatch):
        monkeypatch.setattr(rest, "BACKOFF_BASE", 0.01)
        standin.fail_all(503)
        with pytest.raises(DiscordUnavailable) as info:
            client.member_get(guild_id=standin.guild_id, user_id=MEMBER)
        assert info.value.status == 503
        assert len(standin.served()) == 1 + rest.DEFAULT_RETRIES

    def test_slow_answer_times_out(self, standin):
        standin.script(Fault.slow(1.0), path="/members/")
        with discord_client(timeout=0.2, retries=0) as c:
            started = time.monotonic()
            with pytest.raises(DiscordUnavailable, match="Timeout"):
                c.member_get(guild_id=standin.guild_id, user_id=MEMBER)
        assert time.monotonic() - started < 0.9

    def test_dropped_connection_is_retried(self, client, standin, monkeypatch):
        monkeypatch.setattr(rest, "BACKOFF_BASE", 0.01)
        standin.script(Fault.disconnect(), path="/members/")
        assert client.member_get(guild_id=standin.guild_id, user_id=MEMBER).roles == {ROLE_A}

    def test_server_down_raises_unavailable_then_recovers(self, client, standin, monkeypatch):
        monkeypatch.setattr(rest, "BACKOFF_BASE", 0.01)
        standin.stop()
        with pytest.raises(DiscordUnavailable):
            client.member_get(guild_id=standin.guild_id, user_id=MEMBER)
        standin.start()
        assert client.member_get(guild_id=standin.guild_id, user_id=MEMBER).roles == {ROLE_A}


class TestBucketState:
    """The shared bucket bookkeeping on its own (answers fed by hand, real cache)."""

    ROUTE = discord_limits.Route("member.roles", "1")

    def answer(self, limits, *, remaining, reset_after, reset, limit=3, limited=False):
        limits.learn(self.ROUTE, {
            "x-ratelimit-bucket": "b", "x-ratelimit-limit": str(limit),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset-after": str(reset_after), "x-ratelimit-reset": str(reset),
        }, limited=limited)

    def test_first_request_goes_alone(self):
        limits = discord_limits.RateLimits()
        assert limits.bucket_delay(self.ROUTE) == 0.0  # the scout
        assert limits.bucket_delay(self.ROUTE) == discord_limits.PROVISIONAL_WAIT
        self.answer(limits, remaining=2, reset_after=5, reset=1000.0)
        limits.scouted(self.ROUTE)
        assert [limits.bucket_delay(self.ROUTE) == 0.0 for _ in range(3)] == [True, True, False]

    def test_answers_out_of_order_only_lower_the_count(self):
        limits = discord_limits.RateLimits()
        self.answer(limits, remaining=1, reset_after=5, reset=1000.0)
        self.answer(limits, remaining=2, reset_after=5, reset=1000.0)  # an earlier request's
        assert limits.bucket_delay(self.ROUTE) == 0.0
        assert limits.bucket_delay(self.ROUTE) > 4

    def test_a_late_answer_from_an_old_window_is_ignored(self):
        limits = discord_limits.RateLimits()
        self.answer(limits, remaining=0, reset_after=5, reset=2000.0)
        self.answer(limits, remaining=2, reset_after=5, reset=1000.0)
        assert limits.bucket_delay(self.ROUTE) > 4

    def test_a_new_window_discounts_requests_in_flight(self):
        limits = discord_limits.RateLimits()
        self.answer(limits, remaining=0, reset_after=5, reset=1000.0)
        limits.sending(self.ROUTE)
        limits.sending(self.ROUTE)
        self.answer(limits, remaining=2, reset_after=5, reset=1005.0)
        assert limits.bucket_delay(self.ROUTE) > 4  # 2 left minus 2 still in flight

    def test_a_429_never_ends_a_window_early(self):
        limits = discord_limits.RateLimits()
        self.answer(limits, remaining=2, reset_after=5, reset=1000.0)
        # A 429 of the same window (say a global one with bucket headers): 0 left, counted;
        # its short Reset-After is its own wait (block), not the window's end.
        self.answer(limits, remaining=0, reset_after=0.01, reset=1000.0, limited=True)
        time.sleep(0.02)
        assert limits.bucket_delay(self.ROUTE) > 4

    def test_a_429_never_starts_a_window(self):
        limits = discord_limits.RateLimits()
        self.answer(limits, remaining=2, reset_after=5, reset=1000.0)
        self.answer(limits, remaining=0, reset_after=0.01, reset=1005.0, limited=True)
        # Still the known window, with its 2 left.
        assert [limits.bucket_delay(self.ROUTE) == 0.0 for _ in range(3)] == [True, True, False]

    def test_after_the_window_at_most_limit_go_until_an_answer(self, monkeypatch):
        monkeypatch.setattr(discord_limits, "PROVISIONAL_TTL", 0.3)
        limits = discord_limits.RateLimits()
        self.answer(limits, remaining=0, reset_after=0, reset=1000.0)
        time.sleep(0.01)
        assert [limits.bucket_delay(self.ROUTE) == 0.0 for _ in range(4)] == [
            True, True, True, False]
        # No answer ever came (say, a proxy's 502 without headers): not locked out for good.
        # Cache timeouts are whole seconds (Redis), rounded up: 0.3 s is kept for 1 s.
        time.sleep(max(1, math.ceil(discord_limits.PROVISIONAL_TTL)) + 0.05)
        assert limits.bucket_delay(self.ROUTE) == 0.0


class TestGlobalLimit:
    """The global limit's sliding log on its own (real cache)."""

    @pytest.mark.parametrize("where", ["redis", "process"])
    def test_at_most_48_in_a_sliding_second(self, where):
        from django.core.cache.backends.locmem import LocMemCache

        here = LocMemCache("discord-limits-test", {}) if where == "process" else None
        limits = discord_limits.RateLimits(cache=here)
        assert [limits.global_delay() for _ in range(48)] == [0.0] * 48
        started = time.monotonic()
        delay = limits.global_delay()
        assert 0.5 < delay <= 1.0  # until the first of the 48 is a second old
        time.sleep(delay - (time.monotonic() - started) + 0.005)
        assert limits.global_delay() == 0.0  # the first left: one more goes

    def test_a_global_429_blocks_for_its_retry_after(self):
        limits = discord_limits.RateLimits()
        limits.block(discord_limits.Route("member.get", "1"), 0.3, is_global=True)
        assert 0.25 < limits.global_delay() <= 0.3
        time.sleep(0.31)
        assert limits.global_delay() == 0.0
