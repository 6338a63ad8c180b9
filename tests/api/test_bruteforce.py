"""Guessing passwords, link codes and keys is throttled; spoofed headers do not help."""

from __future__ import annotations

import pytest

from core.models import LogEntry
from tests.api.conftest import assert_error

PASSWORD = "correct horse battery"
NGINX = "10.0.0.1"  # the proxy: every request reaches gunicorn from here


def _login(api, password, **headers):
    return api.post("/api/auth/login", {"username": "member", "password": password}, **headers)


@pytest.mark.django_db
class TestLoginLockout:
    def test_locks_after_failures_even_for_the_right_password(self, api_as, member, settings):
        api = api_as(ip="203.0.113.7")
        for _ in range(settings.AXES_FAILURE_LIMIT):
            assert _login(api, "wrong").status_code in (401, 429)
        body = assert_error(_login(api, PASSWORD), 429, "login_locked")
        assert body["details"]["retry_after"] > 0
        assert LogEntry.objects.filter(action="user.login_failed").exists()

    def test_victim_is_not_locked_out_from_another_ip(self, api_as, member, settings):
        attacker = api_as(ip="203.0.113.66")
        for _ in range(settings.AXES_FAILURE_LIMIT + 2):
            _login(attacker, "wrong")
        assert _login(api_as(ip="198.51.100.23"), PASSWORD).status_code == 200

    def test_spoofed_forwarded_for_does_not_reset_the_count(self, api_as, member, settings):
        settings.NUM_PROXIES = 1
        api = api_as(ip=NGINX)
        # nginx appends the real client address; the attacker controls only what is left of it
        for i in range(settings.AXES_FAILURE_LIMIT):
            _login(api, "wrong", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}, 203.0.113.9")
        assert_error(_login(api, PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.200, 203.0.113.9"),
                     429, "login_locked")
        # a different real client behind the same proxy is unaffected
        assert _login(api, PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.10").status_code == 200

    def test_forwarded_for_ignored_without_a_proxy(self, api_as, member, settings):
        settings.NUM_PROXIES = 0
        api = api_as(ip="203.0.113.70")
        for i in range(settings.AXES_FAILURE_LIMIT):
            _login(api, "wrong", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")
        assert_error(_login(api, PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.99"), 429)


@pytest.mark.django_db
class TestGuessing:
    def test_link_code_guessing_is_throttled_per_account(self, api_as, member, settings):
        limit = settings.ZSPB.rate_limits["link_account"].count
        api = api_as(member)
        for i in range(limit):
            assert_error(api.post("/api/discord/link", {"code": f"AAAA-{i:04d}"}), 400)
        body = assert_error(api.post("/api/discord/link", {"code": "AAAA-9999"}), 429,
                            "rate_limited")
        assert body["details"]["retry_after"] >= 1
        # another IP does not help: the account is the key
        other = api_as(member, ip="192.0.2.55")
        assert_error(other.post("/api/discord/link", {"code": "AAAA-9998"}), 429)

    def test_key_guessing_is_throttled(self, api_as, member, settings):
        limit = settings.ZSPB.rate_limits["redeem_account"].count
        api = api_as(member)
        for i in range(limit):
            assert_error(api.post("/api/keys/redeem",
                                  {"key": f"ZSPB-{i:05d}-00000-00000-00000"}), 404)
        response = api.post("/api/keys/redeem", {"key": "ZSPB-99999-00000-00000-00000"})
        assert_error(response, 429, "rate_limited")
        assert int(response["Retry-After"]) >= 1
        assert LogEntry.objects.filter(action="ratelimit.exceeded").count() == 1

    def test_ip_throttle_ignores_spoofed_forwarded_for(self, api_as, roles, settings):
        from dataclasses import replace

        from config.behaviour import Rate
        from tests.factories import UserFactory

        settings.NUM_PROXIES = 1
        limits = {**settings.ZSPB.rate_limits, "redeem_ip": Rate(count=3, seconds=60)}
        settings.ZSPB = replace(settings.ZSPB, rate_limits=limits)
        statuses = []
        for i in range(5):
            api = api_as(UserFactory.create(), ip=NGINX)  # new accounts: only the IP repeats
            response = api.post("/api/keys/redeem", {"key": "ZSPB-00000-00000-00000-00000"},
                                HTTP_X_FORWARDED_FOR=f"192.0.2.{i}, 203.0.113.44")
            statuses.append(response.status_code)
        assert statuses == [404, 404, 404, 429, 429]
