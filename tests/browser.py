"""What the browser tests share: Debian's Chromium driven by Playwright, the skip-or-fail rule
for a machine without them, and the staff login with its second factor.

Chromium comes from the distribution (apt-get install chromium); `playwright install` is never
run. Without it the browser tests skip, unless ZSPB_REQUIRE_BROWSER=1 (CI), which turns the
skip into a failure.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def require_or_skip(message: str) -> None:
    """Skip for lack of a browser tool, or fail where ZSPB_REQUIRE_BROWSER=1 (CI) needs it."""
    if os.environ.get("ZSPB_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{message}, and ZSPB_REQUIRE_BROWSER=1 requires it")
    pytest.skip(message)


@contextlib.contextmanager
def _with_fresh_connections(sync_playwright: Any) -> Iterator[Any]:
    """Playwright's session, with Django's connections closed as its first and last step.

    Playwright's sync API keeps an event loop running in the test's thread, and while one runs
    Django keeps database connections per context (asgiref's Local), not per thread: the ORM
    inside `with sync_playwright()` uses wrappers of its own, which outlive the session and
    which the next session in the same thread picks up again. One such connection, killed by
    the database-outage tests in between, failed a later browser test in CI ("terminating
    connection due to administrator command"). Closed here, each session's first query takes
    a connection from the pool, whose checkout check replaces a dead one.
    """
    with sync_playwright() as playwright:
        connections.close_all()
        try:
            yield playwright
        finally:
            connections.close_all()


def playwright_or_skip() -> Any:
    """Playwright's sync_playwright, or a skip (a failure in CI) saying what is missing."""
    problems = []
    if not CHROMIUM.exists():
        problems.append(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    sync_playwright: Any = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problems.append("the playwright package is missing (pip install playwright)")
    if problems:
        require_or_skip("browser test: " + "; ".join(problems))
    return functools.partial(_with_fresh_connections, sync_playwright)


def totp_now(device: TOTPDevice) -> str:
    """The code an authenticator app would show for the seeded device right now."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def staff_log_in(page: Any, base: str, username: str, password: str,
                 device: TOTPDevice) -> None:
    """The staff admin's login: password, then the authenticator code, ending on /admin/."""
    page.goto(f"{base}/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/admin/otp/verify/"))
    page.fill("input[name=token]", totp_now(device))
    page.click("#otp-verify-form button[type=submit]")
    page.wait_for_url(re.compile(r"/admin/$"))
