"""The member side in a real browser (Debian's Chromium driven by Playwright) against the whole
site served by uvicorn (HTTP and WebSocket on one port): the journey a new member takes, the
real-time events, and every page at phone and desktop width with an accessibility check.

Screenshots go to test-artifacts/pages/. Without /usr/bin/chromium, the playwright package or
axe-core (tests/browser_assets, installed by `make test`), these tests skip, unless
ZSPB_REQUIRE_BROWSER=1 (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import secrets
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.models import LoaderRelease, Role, Subscription, User
from core.services.invites import invite_create
from core.services.keys import keys_generate
from tests.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    playwright_or_skip,
    require_or_skip,
    staff_log_in,
)
from tests.factories import ProductFactory, UserFactory

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "pages"
AXE = Path(settings.BASE_DIR) / "tests" / "browser_assets" / "node_modules" / "axe-core" / \
    "axe.min.js"
PASSWORD = "correct horse battery"
WIDTHS = (375, 1280)
MEMBER_PAGES = ("", "invites", "redeem", "discord", "download", "machine", "account")


def _axe_or_skip() -> str:
    if not AXE.exists():
        require_or_skip(f"{AXE} is missing (make browser-assets runs npm ci in "
                        "tests/browser_assets)")
    return AXE.read_text(encoding="utf-8")


class Watch:
    """Collects what would be a defect whatever the page: script errors and CSP refusals."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def attach(self, page: Any, name: str) -> Any:
        page.on("pageerror", lambda exc: self.problems.append(f"{name}: {exc}"))

        def console(message: Any) -> None:
            if "Content Security Policy" in message.text:
                self.problems.append(f"{name}: {message.text}")

        page.on("console", console)
        return page


def _context(browser: Any, *, width: int = 1280, locale: str = "en-GB", **extra: Any) -> Any:
    context = browser.new_context(viewport={"width": width, "height": 900}, locale=locale,
                                  **extra)
    context.set_default_timeout(15_000)
    return context


def _log_in(page: Any, base: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/login")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("#login-submit")
    page.wait_for_url(f"{base}/")


def _wait_live(page: Any) -> None:
    page.wait_for_selector("#live-state[data-state=on]", timeout=10_000)


def _countdown_seconds(text: str) -> int:
    numbers = [int(n) for n in re.findall(r"\d+", text)]
    assert len(numbers) == 4, text
    days, hours, minutes, seconds = numbers
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _shoot(page: Any, name: str, width: int) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)


def _licence_check(api: httpx.Client, key: str, hwid: str) -> bool:
    response = api.post("/api/license/check", json={
        "product": "loader-pro", "hwid": hwid, "nonce": secrets.token_hex(16), "key": key})
    assert response.status_code == 200, response.text
    # The answer is signed; the reference client checks signatures, here only the verdict counts.
    return bool(json.loads(base64.b64decode(response.json()["payload"]))["valid"])


@pytest.mark.slow
def test_member_journey_with_real_time_events(asgi_server: str, roles: dict[str, Role],
                                              settings: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    sync_playwright = playwright_or_skip()
    # Every browser here comes from 127.0.0.1: the one-account-per-address rule is off.
    settings.ZSPB = dataclasses.replace(settings.ZSPB, registration_ip_window_hours=0)
    # Playwright's sync API keeps an event loop on this thread; the ORM calls here are sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    base = asgi_server
    boss = UserFactory.create(username="boss", role=roles["admin"], is_staff=True)
    device = TOTPDevice.objects.create(user=boss, name="phone", confirmed=True)
    product = ProductFactory.create(name="Loader Pro", slug="loader-pro")
    invite = invite_create(creator=boss)
    key = keys_generate(actor=boss, product=product, duration=timedelta(days=30),
                        count=1).codes[0]
    watch = Watch()
    api = httpx.Client(base_url=base, timeout=10)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            # 1. An invite link opens the registration with the code filled in.
            alice_ctx = _context(browser)
            alice = watch.attach(alice_ctx.new_page(), "alice")
            alice.goto(f"{base}/register?invite={invite.code}")
            assert alice.input_value("#id_invite") == invite.code
            assert "(optional)" in alice.inner_text("label[for=id_email]")
            alice.fill("#id_username", "alice")
            alice.fill("#id_password", PASSWORD)
            alice.click("#register-submit")
            alice.wait_for_url(f"{base}/")
            assert "alice" in alice.inner_text("h1")
            _wait_live(alice)

            # 2. Alice creates an invite; Bob registers with it in a second browser, and
            # Alice's open page hears about it.
            alice.goto(f"{base}/invites")
            alice.click("#invite-create")
            alice.wait_for_selector("#invite-table tr[data-status=active]")
            link = alice.inner_text("#invite-table tr[data-status=active] .invite-link").strip()
            assert link.startswith(f"{base}/register?invite=INV-")
            _wait_live(alice)
            bob_ctx = _context(browser)
            bob = watch.attach(bob_ctx.new_page(), "bob")
            bob.goto(link)
            bob.fill("#id_username", "bob")
            bob.fill("#id_password", PASSWORD)
            bob.click("#register-submit")
            bob.wait_for_url(f"{base}/")
            alice.wait_for_selector("#invite-table tr[data-status=used]", timeout=5_000)
            assert "bob" in alice.inner_text("#invite-table tr[data-status=used]")
            assert User.objects.get(username="bob").invited_by.username == "alice"

            # 3. Discord: /code in Discord (the bot's API call), the code typed on the site.
            alice.goto(f"{base}/discord")
            issued = api.post("/api/bot/link-codes", json={"discord_username": "alice_dc"},
                              headers={"Authorization": f"Bearer {settings.BOT_API_TOKEN}",
                                       "X-Discord-User-Id": "123456789012345678"})
            assert issued.status_code == 200, issued.text
            alice.fill("#id_code", issued.json()["code"].lower())
            alice.click("#link-form [type=submit]")
            alice.wait_for_selector("#discord-linked")
            assert "alice_dc" in alice.inner_text("#discord-linked")
            assert "alice_dc" in alice.inner_text("#notice")

            # 4. Redeem the key as a person would type it: lower case, spaces, O for 0.
            alice.goto(f"{base}/redeem")
            typed = key.lower().replace("-", " ").replace("0", "o")
            alice.fill("#id_key", typed)
            alice.click("#redeem-form [type=submit]")
            alice.wait_for_selector("#redeem-result:not([hidden])")
            assert "Loader Pro" in alice.inner_text("#redeem-result")

            # 5. The countdown is visible and decreasing.
            alice.goto(f"{base}/")
            countdown = alice.locator(".sub-card[data-product=loader-pro] .countdown")
            first = _countdown_seconds(countdown.inner_text())
            assert 29 * 86400 < first <= 30 * 86400
            time.sleep(2.2)
            second = _countdown_seconds(countdown.inner_text())
            assert 1 <= first - second <= 4

            # 6. Machine binding: bound by the loader, reset by the member, then the cooldown
            # refuses a second reset.
            assert _licence_check(api, key, "HW-OLD")
            assert not _licence_check(api, key, "HW-NEW")
            alice.goto(f"{base}/machine")
            alice.once("dialog", lambda dialog: dialog.accept())
            alice.click(".card[data-product=loader-pro] button[data-api]")
            alice.wait_for_selector("#notice:not([hidden])")
            assert _licence_check(api, key, "HW-NEW")
            alice.reload()
            assert alice.locator(".card[data-product=loader-pro] button[data-api]").count() == 0
            assert alice.locator(".card[data-product=loader-pro] .cooldown").is_visible()
            csrf = next(c["value"] for c in alice_ctx.cookies() if c["name"] == "csrftoken")
            refused = alice.request.post(f"{base}/api/subscriptions/loader-pro/reset-machine",
                                         headers={"X-CSRFToken": csrf, "Referer": base})
            assert refused.status == 409
            assert refused.json()["code"] == "machine_reset_cooldown"
            subscription = Subscription.objects.get(user__username="alice")
            assert subscription.hwid_digest and subscription.hwid_self_reset_at

            # 7. A password change ends Alice's other session (a second browser), not this one.
            other_ctx = _context(browser)
            other = watch.attach(other_ctx.new_page(), "alice-other")
            _log_in(other, base, "alice")
            _wait_live(other)
            alice.goto(f"{base}/account")
            alice.fill("#id_old_password", PASSWORD)
            alice.fill("#id_new_password", "a brand new passphrase")
            alice.fill("#id_new_password2", "a brand new passphrase")
            alice.click("#password-form [type=submit]")
            alice.wait_for_selector("#notice:not([hidden])")
            other.wait_for_url(re.compile(r"/login"), timeout=5_000)
            alice.goto(f"{base}/")
            assert alice.url == f"{base}/"

            # 8. Staff bans Alice from the admin (a third browser): her open page logs out
            # within two seconds, told why.
            _wait_live(alice)
            staff_ctx = _context(browser)
            staff = watch.attach(staff_ctx.new_page(), "staff")
            staff_log_in(staff, base, "boss", PASSWORD, device)
            alice_id = User.objects.get(username="alice").pk
            staff.goto(f"{base}/admin/core/user/{alice_id}/member-ban-users/")
            staff.fill("textarea[name=reason]", "sharing the loader")
            with staff.expect_navigation():
                staff.get_by_role("button", name="Ban", exact=True).click()
            started = time.monotonic()
            alice.wait_for_url(re.compile(r"/login\?banned=1"), timeout=2_000)
            logged_out_after = time.monotonic() - started
            assert logged_out_after < 2
            assert alice.locator(".alert-danger").is_visible()
            # With the right password she sees the reason instead of "invalid password".
            alice.fill("#id_username", "alice")
            alice.fill("#id_password", "a brand new passphrase")
            alice.click("#login-submit")
            assert "sharing the loader" in alice.inner_text("#banned-notice")
            _shoot(alice, "login-banned", 1280)
        finally:
            browser.close()
            api.close()
    assert watch.problems == []


def _seed_member_with_data(roles: dict[str, Role]) -> User:
    boss = UserFactory.create(username="boss", role=roles["admin"], is_staff=True)
    member = UserFactory.create(username="maria", role=roles["user"], invited_by=boss,
                                discord_id=222333444555666777, discord_username="maria_dc")
    pro = ProductFactory.create(name="Loader Pro", slug="loader-pro")
    lite = ProductFactory.create(name="Loader Lite", slug="loader-lite")
    from django.utils import timezone

    now = timezone.now()
    Subscription.objects.create(user=member, product=pro, expires_at=now + timedelta(days=12),
                                hwid_digest="0" * 64)
    Subscription.objects.create(user=member, product=lite, started_at=now - timedelta(days=40),
                                expires_at=now - timedelta(days=10))
    used = invite_create(creator=member)
    invitee = UserFactory.create(username="nikita", role=roles["user"], invited_by=member)
    used.status, used.used_by, used.used_at = "used", invitee, now
    used.save()
    invite_create(creator=member)
    release = LoaderRelease.objects.create(
        version="2.4.1", sha256="9f2c" * 16, size=18_874_368, published=True,
        changelog="Faster start-up.\nFixed the update check behind proxies.")
    release.file.save("loader.bin", ContentFile(b"loader bytes"), save=True)
    return member


def _axe_check(page: Any, axe_source: str) -> list[str]:
    page.add_script_tag(content=axe_source)
    result = page.evaluate(
        "async () => JSON.stringify((await axe.run(document, {resultTypes: ['violations']}))"
        ".violations.map(v => ({id: v.id, impact: v.impact, "
        "nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)})))")
    return [f"{v['id']} ({v['impact']}): {', '.join(v['nodes'])}" for v in json.loads(result)
            if v["impact"] in ("serious", "critical")]


@pytest.mark.slow
def test_every_member_page_at_phone_and_desktop_width_is_accessible(
    asgi_server: str, roles: dict[str, Role], monkeypatch: pytest.MonkeyPatch
) -> None:
    sync_playwright = playwright_or_skip()
    axe_source = _axe_or_skip()
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    base = asgi_server
    _seed_member_with_data(roles)
    invite = invite_create(creator=User.objects.get(username="boss"))
    watch = Watch()
    violations: dict[str, list[str]] = {}

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for width in WIDTHS:
                # The page keeps its CSP; only the injected axe script is let through.
                context = _context(browser, width=width, bypass_csp=True)
                page = watch.attach(context.new_page(), f"pages-{width}")
                for name, url in (("login", "/login"),
                                  ("register", f"/register?invite={invite.code}")):
                    page.goto(f"{base}{url}")
                    _shoot(page, name, width)
                    violations[f"{name}-{width}"] = _axe_check(page, axe_source)
                _log_in(page, base, "maria")
                for name in MEMBER_PAGES:
                    page.goto(f"{base}/{name}")
                    page.wait_for_load_state("networkidle")
                    if name == "":
                        _wait_live(page)
                    label = name or "dashboard"
                    assert page.evaluate("document.documentElement.scrollWidth") <= width, (
                        f"{label} scrolls sideways at {width} px")
                    _shoot(page, label, width)
                    violations[f"{label}-{width}"] = _axe_check(page, axe_source)
                context.close()

            # Russian: chosen from Accept-Language, then switched back and forth.
            context = _context(browser, width=375, locale="ru-RU", bypass_csp=True)
            page = watch.attach(context.new_page(), "ru")
            page.goto(f"{base}/login")
            assert page.get_attribute("html", "lang") == "ru"
            assert "Войти" in page.inner_text("#login-submit")
            _log_in(page, base, "maria")
            assert "Подписки" in page.inner_text("#subs-title")
            _shoot(page, "dashboard-ru", 375)
            violations["dashboard-ru"] = _axe_check(page, axe_source)
            page.click(".lang-switch button[value=en]")
            page.wait_for_load_state("load")
            assert page.get_attribute("html", "lang") == "en"
            page.goto(f"{base}/account")  # remembered across pages
            assert page.get_attribute("html", "lang") == "en"
            context.close()
        finally:
            browser.close()
    assert {page: found for page, found in violations.items() if found} == {}
    assert watch.problems == []
    for width in WIDTHS:
        assert (ARTIFACTS / f"dashboard-{width}.png").stat().st_size > 0
