"""The staff dashboard: today's numbers, the queue warning, 30-day charts, cheap queries."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_q.models import OrmQ

from core.models import LicenseKey, RoleSyncRequest, Subscription, User
from core.selectors.dashboard import dashboard_snapshot, estimated_count
from core.services.bans import ban_create
from core.services.keys import key_redeem, keys_generate
from tests.browser import CHROMIUM, CHROMIUM_ARGS, playwright_or_skip, staff_log_in
from tests.factories import UserFactory

ARTIFACTS = Path(django_settings.BASE_DIR) / "test-artifacts"


def card(html: str, card_id: str) -> str:
    match = re.search(rf'id="{card_id}".*?<span class="value">([^<]*)</span>', html, re.S)
    assert match, card_id
    return match.group(1)


@pytest.fixture
def activity(admin, product, roles):
    generated = keys_generate(actor=admin, product=product, duration=timedelta(days=30),
                              count=5)
    buyer = UserFactory.create(username="buyer")
    key_redeem(user=buyer, code=generated.codes[0])
    ban_create(actor=admin, user=UserFactory.create(username="cheater"), reason="x")
    now = timezone.now()
    Subscription.objects.create(user=UserFactory.create(username="lapsed"), product=product,
                                started_at=now - timedelta(days=40),
                                expires_at=now - timedelta(days=10))
    return generated


@pytest.mark.django_db
def test_dashboard_shows_the_numbers(staff_client, activity):
    client = staff_client("support")
    response = client.get("/admin/")
    assert response.status_code == 200
    html = response.content.decode()
    assert card(html, "card-users") == str(User.objects.count())
    assert card(html, "card-subscriptions") == "1"
    assert card(html, "card-free-keys") == "4"
    assert card(html, "card-redemptions") == "1"
    assert card(html, "card-bans") == "1"
    assert card(html, "card-queue") == "0"
    assert 'id="queue-warning"' not in html


@pytest.mark.django_db
def test_queue_warning_above_the_threshold(settings, staff_client):
    settings.QUEUE_WARN_THRESHOLD = 2
    past = timezone.now() - timedelta(seconds=1)
    OrmQ.objects.bulk_create([OrmQ(key=settings.Q_CLUSTER["name"], payload="x", lock=past)
                              for _ in range(3)])
    html = staff_client("admin").get("/admin/").content.decode()
    assert card(html, "card-queue") == "3"
    assert 'id="queue-warning"' in html


@pytest.mark.django_db
def test_thirty_day_charts(staff_client, activity, roles):
    UserFactory.create(username="old", date_joined=timezone.now() - timedelta(days=3))
    html = staff_client("admin").get("/admin/").content.decode()
    charts = re.findall(r'data-type="bar" data-value="([^"]*)"', html)
    assert len(charts) == 2
    registrations, redemptions = (json.loads(c.replace("&quot;", '"')) for c in charts)
    assert len(registrations["labels"]) == 30
    assert sum(registrations["datasets"][0]["data"]) == User.objects.filter(
        date_joined__gte=timezone.now() - timedelta(days=30)).count()
    assert registrations["datasets"][0]["data"][-4] >= 1
    assert redemptions["datasets"][0]["data"][-1] == 1
    assert sum(redemptions["datasets"][0]["data"]) == 1


def chart_data(html: str) -> tuple[list[int], list[int]]:
    charts = re.findall(r'data-type="bar" data-value="([^"]*)"', html)
    registrations, redemptions = (json.loads(c.replace("&quot;", '"')) for c in charts)
    return registrations["datasets"][0]["data"], redemptions["datasets"][0]["data"]


def total(html: str, total_id: str) -> int:
    match = re.search(rf'id="{total_id}"[^>]*>\s*(\d+)', html)
    assert match, total_id
    return int(match.group(1))


@pytest.mark.django_db
def test_tiles_and_charts_agree_after_new_activity(staff_client, activity, roles):
    """The tiles and the charts are read at the same moment from the same rows: a second
    visit after more redemptions shows the new numbers in both, never a fresh tile beside
    a chart from minutes ago."""
    client = staff_client("admin")
    client.get("/admin/")
    for code in activity.codes[1:4]:
        key_redeem(user=UserFactory.create(), code=code)
    html = client.get("/admin/").content.decode()
    registrations, redemptions = chart_data(html)
    assert card(html, "card-redemptions") == str(redemptions[-1]) == "4"
    assert total(html, "redemptions-total") == sum(redemptions) == 4
    assert card(html, "card-registrations") == str(registrations[-1])
    assert total(html, "registrations-total") == sum(registrations)


@pytest.mark.django_db
def test_snapshot_tiles_are_the_last_day_of_the_history(activity):
    snapshot = dashboard_snapshot()
    assert len(snapshot.history) == 30
    assert snapshot.redemptions_today == snapshot.history[-1].redemptions == 1
    assert snapshot.registrations_today == snapshot.history[-1].registrations
    # Redemptions come from the keys themselves, not from journal lines.
    LicenseKey.objects.update(redeemed_at=None, status=LicenseKey.Status.FREE)
    after = dashboard_snapshot()
    assert after.redemptions_today == sum(p.redemptions for p in after.history) == 0


@pytest.mark.django_db
def test_discord_tile_says_when_discord_is_off(staff_client, settings, member, admin):
    RoleSyncRequest.objects.bulk_create([
        RoleSyncRequest(user=user, reason="test", requested_at=timezone.now(),
                        not_before=timezone.now()) for user in (member, admin)])
    client = staff_client("admin", username="boss")
    html = client.get("/admin/").content.decode()
    tile = re.search(r'id="card-role-sync".*?</section>', html, re.S)
    assert tile, html
    assert "Discord is off" in tile.group(0)
    assert "2 waiting until it is on" in tile.group(0)
    settings.DISCORD_ENABLED, settings.DISCORD_BOT_TOKEN = True, "token"
    settings.DISCORD_GUILD_ID = 1
    html = client.get("/admin/").content.decode()
    assert card(html, "card-role-sync") == "2"
    assert "Discord is off" not in html


@pytest.mark.django_db
@pytest.mark.postgres
def test_history_reads_only_the_window_through_indexes(activity):
    """The history is computed on every visit: it reads the 30-day window through the
    indexes on date_joined and redeemed_at instead of scanning the whole tables."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    with CaptureQueriesContext(connection) as captured:
        dashboard_snapshot()
    history = [q["sql"] for q in captured.captured_queries
               if '"redeemed_at"' in q["sql"] or '"date_joined" >=' in q["sql"]]
    assert len(history) == 2, history
    with connection.cursor() as cursor:
        for sql in history:
            cursor.execute(f"EXPLAIN {sql}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "Seq Scan" not in plan, plan


@pytest.mark.django_db
def test_dashboard_queries_do_not_grow_with_data(staff_client, admin, product, roles):
    client = staff_client("admin")
    client.get("/admin/")  # the session and the role are cached after a first visit

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/admin/").status_code == 200
        return len(captured)

    before = queries()
    keys_generate(actor=admin, product=product, duration=timedelta(days=1), count=300)
    User.objects.bulk_create([User(username=f"d{i}", password="!") for i in range(300)])
    assert queries() == before
    assert before <= 20


@pytest.mark.django_db
def test_estimates_only_on_large_postgres_tables(admin, product):
    keys_generate(actor=admin, product=product, duration=timedelta(days=1), count=3)
    exact = estimated_count(LicenseKey.objects.filter(status="free"))
    assert (exact.value, exact.estimated) == (3, False)
    assert dashboard_snapshot().free_keys.value == 3


@pytest.mark.django_db
@pytest.mark.postgres
def test_free_keys_come_from_the_planner_on_postgres(admin, product):
    keys_generate(actor=admin, product=product, duration=timedelta(days=1), count=400)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE core_licensekey")
    with CaptureQueriesContext(connection) as captured:
        count = estimated_count(LicenseKey.objects.filter(status="free"), exact_below=100)
    assert count.estimated
    assert 200 <= count.value <= 800
    assert not [q for q in captured if "COUNT(" in q["sql"].upper()]
    whole = estimated_count(LicenseKey.objects.all(), exact_below=100)
    assert whole.estimated and 200 <= whole.value <= 800


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_card_icons_sit_inside_their_cards(live_server, roles, settings, monkeypatch):
    """Each tile's icon is drawn whole inside its card, on a desktop and on a phone."""
    sync_playwright = playwright_or_skip()
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    support = UserFactory.create(username="support_browser", role=roles["support"])
    device = TOTPDevice.objects.create(user=support, name="phone", confirmed=True)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(20_000)
            staff_log_in(page, live_server.url, support.username, "correct horse battery",
                         device)
            for width in (1280, 375):
                page.set_viewport_size({"width": width, "height": 900})
                page.goto(f"{live_server.url}/admin/")
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(ARTIFACTS / f"dashboard-{width}.png"), full_page=True)
                icons = page.locator("#staff-dashboard .material-symbols-outlined")
                assert icons.count() >= 7
                for i in range(icons.count()):
                    icon = icons.nth(i)
                    icon_box = icon.bounding_box()
                    # The card: the nearest bordered, rounded box around the icon.
                    card_box = icon.locator(
                        "xpath=ancestor::*[contains(@class, 'rounded-default')][1]"
                    ).bounding_box()
                    assert card_box and icon_box
                    assert icon_box["x"] >= card_box["x"], (width, i)
                    assert icon_box["y"] >= card_box["y"], (width, i)
                    assert (icon_box["x"] + icon_box["width"]
                            <= card_box["x"] + card_box["width"]), (width, i)
                    assert (icon_box["y"] + icon_box["height"]
                            <= card_box["y"] + card_box["height"]), (width, i)
        finally:
            browser.close()
