"""What the browser tests share: Debian's Chromium driven by Playwright, the skip-or-fail rule
for a machine without them, and the staff login with its second factor.

Chromium comes from the distribution (apt-get install chromium); `playwright install` is never
run. Without it the browser tests skip, unless ZSPB_REQUIRE_BROWSER=1 (CI), which turns the
skip into a failure.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
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
    return sync_playwright


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
