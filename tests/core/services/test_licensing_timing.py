"""Refusals take the same time whatever the reason (issue 11).

In-process calls of the licence check on PostgreSQL, interleaved round by round so load on the
machine hits every reason alike. Each reason is compared with the unknown key of the same round,
and the median of those differences is what must stay small: a stray slow sample (another
process, a GC pause) moves a median little, and load that drifts between rounds cancels out.
A real difference fails every attempt; noise on a loaded machine rarely fails three in a row.
Before timing, the test asserts the property that explains the timing: every refusal reason
runs the same SQL statements.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from core.services.licensing import LicenseAnswer, license_check
from tests.core.services.test_licensing import _redeemed_key, _refusal_world
from tests.factories import ProductFactory

NONCE = "n0nce-0123456789abcdef"
PASSWORD = "correct horse battery"
ROUNDS = 60
MIN_ROUNDS = 15
WARMUP = 3
BUDGET_SECONDS = 3.0  # per attempt: a loaded machine gets fewer rounds rather than a slow test
ATTEMPTS = 3
BASELINE = "key_unknown"

Call = Callable[[], LicenseAnswer]
TIMER = time.perf_counter


def _caller(*, product: str = "loader", hwid: str = "machine-A", **mode: str) -> Call:
    request = RequestFactory().post("/api/license/check", REMOTE_ADDR="192.0.2.10")

    def call() -> LicenseAnswer:
        return license_check(request=request, ip="192.0.2.10", product=product, hwid=hwid,
                             nonce=NONCE, **mode)
    return call


def _sample(calls: dict[str, Call]) -> dict[str, list[float]]:
    """Milliseconds per call, one list per name; index i of every list is round i."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    deadline = time.monotonic() + BUDGET_SECONDS
    for i in range(WARMUP + ROUNDS):
        if i >= WARMUP + MIN_ROUNDS and time.monotonic() > deadline:
            break
        # A different order each round: no reason always runs right after the same other one.
        order = names[i % len(names):] + names[:i % len(names)]
        for name in order:
            cache.clear()  # the throttles would otherwise stop the loop
            started = TIMER()
            calls[name]()
            elapsed = TIMER() - started
            if i >= WARMUP:
                samples[name].append(elapsed * 1000)
    return samples


def _offsets(samples: dict[str, list[float]], names: list[str]) -> dict[str, float]:
    """Per name, the median over rounds of its time minus the baseline's in that round (ms)."""
    base = samples[BASELINE]
    return {name: statistics.median(t - b for t, b in zip(samples[name], base, strict=True))
            for name in names}


def _within_noise(offsets: dict[str, float], typical: float) -> bool:
    return max(offsets.values()) - min(offsets.values()) < max(0.5, 0.25 * typical)


def _statements(call: Call) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        assert not call().valid
    # The statement without its values: which tables and joins it reads, not for whom.
    return [re.sub(r"'(?:[^']|'')*'|\b(?:\d+|NULL)\b", "?", query["sql"])
            for query in ctx.captured_queries]


@pytest.mark.postgres
@pytest.mark.django_db
def test_refusals_take_the_same_time_whatever_the_reason(moderator, member, roles, product,
                                                         settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    ProductFactory.create(slug="other")
    code = _redeemed_key(moderator, member, product)
    banned_code, lapsed_code = _refusal_world(moderator, roles, product)
    assert _caller(key=code)().valid  # binds machine-A

    refusals = {
        BASELINE: _caller(key="ZSPB-00000-00000-00000-00000"),
        "hwid_mismatch": _caller(key=code, hwid="machine-B"),
        "subscription_expired": _caller(key=lapsed_code),
        "user_banned": _caller(key=banned_code),
        "product_mismatch": _caller(key=code, product="other"),
    }
    # By account with the right password (a wrong one costs django-axes' bookkeeping and is no
    # secret to whoever typed it): what follows the password check must not tell reasons apart.
    account_refusals = {
        "account_product_unknown": _caller(username="member", password=PASSWORD, product="nope"),
        "account_no_subscription": _caller(username="nosub", password=PASSWORD),
        "account_hwid_mismatch": _caller(username="member", password=PASSWORD, hwid="machine-B"),
    }
    for group in (refusals, account_refusals):
        statements = [_statements(call) for call in group.values()]
        assert all(sql == statements[0] for sql in statements), statements

    calls = {**refusals, **account_refusals, "valid": _caller(key=code)}
    for attempt in range(ATTEMPTS):
        samples = _sample(calls)
        medians = {name: statistics.median(values) for name, values in samples.items()}
        print(f"attempt {attempt + 1}, {len(samples[BASELINE])} rounds, medians (ms):",
              {name: round(value, 3) for name, value in medians.items()})
        # Account refusals add a password hash: they are compared with each other only.
        by_key = _offsets(samples, list(refusals))
        by_account = _offsets(samples, list(account_refusals))
        if (_within_noise(by_key, medians[BASELINE])
                and _within_noise(by_account, medians[BASELINE])):
            return
    raise AssertionError(f"refusals differ (ms): by key {by_key}, by account {by_account}")
