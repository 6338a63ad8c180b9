"""A real browser (headless Chromium) against the live server: log in with password and TOTP,
generate a batch of keys, find them in the key list. Screenshots go to test-artifacts/.

Chromium and Playwright as in tests/browser.py (skipped without them, except in CI).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.models import KeyGenerationJob, LicenseKey, Product, Role
from tests.browser import CHROMIUM, CHROMIUM_ARGS, playwright_or_skip, staff_log_in
from tests.factories import ProductFactory, UserFactory

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"
PASSWORD = "correct horse battery"
COUNT = 25


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_moderator_logs_in_with_totp_generates_keys_and_finds_them(
    live_server: Any, roles: dict[str, Role], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync_playwright = playwright_or_skip()
    # Plain http on the live server: secure-only cookies would never come back.
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    # Playwright's sync API keeps an event loop on this thread; the ORM calls here are sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    moderator = UserFactory.create(username="mod_browser", role=roles["moderator"])
    device = TOTPDevice.objects.create(user=moderator, name="phone", confirmed=True)
    product: Product = ProductFactory.create(name="Loader Pro", slug="loader-pro")
    ARTIFACTS.mkdir(exist_ok=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.set_default_timeout(20_000)

            staff_log_in(page, live_server.url, moderator.username, PASSWORD, device)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

            page.goto(f"{live_server.url}/admin/core/licensekey/")
            page.click("a[href='/admin/core/licensekey/generate/']")
            page.wait_for_url(re.compile(r"/admin/core/licensekey/generate/$"))
            page.select_option("select[name=product]", str(product.pk))
            page.fill("input[name=duration_value]", "30")
            page.check("input[name=duration_unit][value=days]")
            page.fill("input[name=count]", str(COUNT))
            page.fill("input[name=note]", "browser batch")
            page.screenshot(path=str(ARTIFACTS / "keygen-form.png"), full_page=True)
            page.click("#staff-form-submit")

            page.wait_for_url(re.compile(r"/admin/core/licensekey/generate/\d+/$"))
            batch = page.inner_text("#keygen-batch").strip()
            assert page.inner_text("#keygen-done").strip() == str(COUNT)
            page.screenshot(path=str(ARTIFACTS / "keygen-job.png"), full_page=True)

            page.click("#keygen-list")
            page.wait_for_url(re.compile(rf"/admin/core/licensekey/\?batch={batch}$"))
            page.wait_for_load_state("networkidle")
            listed = page.locator("#result_list tbody tr").count()
            html = page.content()
            page.screenshot(path=str(ARTIFACTS / "keys.png"), full_page=True)
        finally:
            browser.close()

    job = KeyGenerationJob.objects.get()
    assert str(job.batch) == batch and job.status == "done"
    codes = list(LicenseKey.objects.filter(batch=job.batch).values_list("code", flat=True))
    assert len(codes) == COUNT == listed
    assert all(code in html for code in codes)  # a moderator sees the codes in plain text
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 0
    assert (ARTIFACTS / "keys.png").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_redeemed_keys_count_down_in_the_key_list(
    live_server: Any, roles: dict[str, Role], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key list's countdown runs in the browser (staff/js/countdown.js), on the server's
    clock, and says "expired" once the subscription is over."""
    from datetime import timedelta

    from django.utils import timezone

    from core.models import Subscription
    from core.services.keys import key_redeem, keys_generate

    sync_playwright = playwright_or_skip()
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    admin = UserFactory.create(username="admin_browser", role=roles["admin"])
    device = TOTPDevice.objects.create(user=admin, name="phone", confirmed=True)
    product = ProductFactory.create(name="Loader", slug="loader")
    members = [UserFactory.create(username=f"redeemer{i}") for i in range(2)]
    codes = keys_generate(actor=admin, product=product, duration=timedelta(days=3),
                          count=3).codes
    for member, code in zip(members, codes, strict=False):
        key_redeem(user=member, code=code)
    # One subscription ends in two seconds: its countdown must turn into "expired".
    Subscription.objects.filter(user=members[1]).update(
        expires_at=timezone.now() + timedelta(seconds=2))

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.set_default_timeout(20_000)
            staff_log_in(page, live_server.url, admin.username, PASSWORD, device)
            page.goto(f"{live_server.url}/admin/core/licensekey/")
            counters = page.locator(".staff-countdown")
            assert counters.count() == 2
            selector = (f".staff-countdown[data-expires='"
                        f"{Subscription.objects.get(user=members[0]).expires_at.isoformat()}']")
            ticking = page.locator(selector)
            page.wait_for_function(
                "(selector) => /\\d+d \\d\\dh \\d\\dm \\d\\ds/.test("
                "document.querySelector(selector).textContent)", arg=selector)
            first = ticking.first.inner_text()
            page.wait_for_timeout(1500)
            second = ticking.first.inner_text()
            page.wait_for_function(
                "() => [...document.querySelectorAll('.staff-countdown')]"
                ".some(n => n.textContent === 'expired')")
            page.screenshot(path=str(ARTIFACTS / "keys-countdown.png"), full_page=True)
            free = page.locator("#result_list").inner_text()
        finally:
            browser.close()
    assert re.fullmatch(r"2d 23h \d\dm \d\ds", first), first
    assert first != second
    assert "3 days, not started" in free
