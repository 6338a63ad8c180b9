"""Guessing at scale: 10,000 wrong link codes, keys and logins (ZSPB_ABUSE_ATTEMPTS; 1,000 in
`make test`), from one address and with a
different spoofed X-Forwarded-For on every request, are throttled (at most the configured
rate gets through per window), journaled once per window rather than once per request, and
leave the other members alone."""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

import pytest

from core.models import LogEntry
from tests.api.conftest import api_as, assert_error

__all__ = ["api_as"]  # the fixture, for these tests

# 10,000 in `make soak`; `make test` runs 1,000 of each (about 10,000 requests take a few
# minutes in-process, and the assertions are the same at both sizes).
ATTEMPTS = int(os.environ.get("ZSPB_ABUSE_ATTEMPTS", "1000"))
NGINX = "10.0.0.1"  # every request reaches the app from the proxy
ATTACKER = "203.0.113.66"  # what nginx appends: the attacker's real address
VICTIM = "198.51.100.20"
PASSWORD = "correct horse battery"


def _spoofed(i: int) -> str:
    # The attacker writes anything left of what nginx appends (NUM_PROXIES=1).
    return f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}, {ATTACKER}"


def _windows(scope: str, settings: Any, seconds: float) -> int:
    """Fixed windows a run of `seconds` can touch: a refusal is journaled once per window."""
    return int(seconds // settings.ZSPB.rate_limits[scope].seconds) + 2


@pytest.fixture
def proxied(settings: Any) -> None:
    settings.NUM_PROXIES = 1


def _hammer(api: Any, path: str, body: Any, victim_check: Any) -> Counter[int]:
    statuses: Counter[int] = Counter()
    for i in range(ATTEMPTS):
        response = api.post(path, body(i), HTTP_X_FORWARDED_FOR=_spoofed(i))
        statuses[response.status_code] += 1
        if i % 1000 == 999:
            victim_check()
    return statuses


GUESSES = {
    # path, the attacker's n-th guess, the victim's own wrong guess, its answer, the scopes
    "link codes": ("/api/discord/link", lambda i: {"code": f"AAAA-{i:04d}"[:9]},
                   {"code": "BBBB-0000"}, 400, "link_account", "link_ip"),
    "keys": ("/api/keys/redeem", lambda i: {"key": f"ZSPB-{i:05d}-00000-00000-00000"},
             {"key": "ZSPB-00000-00000-00000-00001"}, 404, "redeem_account", "redeem_ip"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("kind", list(GUESSES))
def test_ten_thousand_wrong_guesses(kind: str, api_as: Any, member: Any, roles: Any,
                                    settings: Any, proxied: None,
                                    django_user_model: Any) -> None:
    path, guess, own_guess, wrong, account_scope, ip_scope = GUESSES[kind]
    victim = django_user_model.objects.create_user(username="victim", password=PASSWORD,
                                                   role=roles["user"])
    victim_api = api_as(victim, ip=NGINX)

    def victim_check() -> None:
        # The victim's own wrong guess is refused as wrong, not throttled.
        assert_error(victim_api.post(path, own_guess, HTTP_X_FORWARDED_FOR=VICTIM), wrong)

    started = time.monotonic()
    statuses = _hammer(api_as(member, ip=NGINX), path, guess, victim_check)
    elapsed = time.monotonic() - started
    limit = settings.ZSPB.rate_limits[account_scope].count
    assert set(statuses) <= {wrong, 429}, statuses
    assert statuses[wrong] <= limit * _windows(account_scope, settings, elapsed), statuses
    journaled = LogEntry.objects.filter(action="ratelimit.exceeded").count()
    assert 1 <= journaled <= 2 * _windows(ip_scope, settings, elapsed)


@pytest.mark.django_db
def test_ten_thousand_wrong_logins(api_as: Any, member: Any, settings: Any,
                                   proxied: None) -> None:
    """Against one member's name: the attacker's address is locked out for that name and
    throttled, while the member logs in from their own address throughout."""
    victim_api = api_as(ip=NGINX)

    def victim_check() -> None:
        response = victim_api.post("/api/auth/login",
                                   {"username": "member", "password": PASSWORD},
                                   HTTP_X_FORWARDED_FOR=VICTIM)
        assert response.status_code == 200, response.content
        victim_api.post("/api/auth/logout", HTTP_X_FORWARDED_FOR=VICTIM)

    started = time.monotonic()
    statuses = _hammer(api_as(ip=NGINX), "/api/auth/login",
                       lambda i: {"username": "member", "password": f"wrong {i}"},
                       victim_check)
    elapsed = time.monotonic() - started
    assert set(statuses) <= {401, 429}, statuses
    # Wrong passwords are told apart from refusals only until the lock-out.
    assert statuses[401] <= settings.AXES_FAILURE_LIMIT, statuses
    failures = LogEntry.objects.filter(action="user.login_failed").count()
    throttled = LogEntry.objects.filter(action="ratelimit.exceeded").count()
    assert failures <= settings.AXES_FAILURE_LIMIT + 1
    assert 1 <= throttled <= 2 * _windows("login_ip", settings, elapsed)
