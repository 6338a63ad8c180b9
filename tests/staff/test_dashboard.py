"""The staff dashboard: today's numbers, the queue warning, 30-day charts, cheap queries."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.models import OrmQ

from core.models import LicenseKey, Subscription, User
from core.selectors.dashboard import dashboard_history, dashboard_numbers, estimated_count
from core.services.bans import ban_create
from core.services.keys import key_redeem, keys_generate
from tests.factories import UserFactory


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


@pytest.mark.django_db
def test_history_is_cached_between_page_views(activity):
    first = dashboard_history()
    LicenseKey.objects.update(redeemed_at=None, status=LicenseKey.Status.FREE)
    assert dashboard_history() == first
    assert sum(p.redemptions for p in dashboard_history(use_cache=False)) == 0


@pytest.mark.django_db
def test_dashboard_queries_do_not_grow_with_data(staff_client, admin, product, roles):
    client = staff_client("admin")
    client.get("/admin/")  # warm the history cache like a second visit

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
    assert dashboard_numbers().free_keys.value == 3


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
