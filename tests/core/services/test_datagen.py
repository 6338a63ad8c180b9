"""The data generator (manage.py generate_data): rows the app accepts, at a small scale."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Count
from django.test import Client
from django.utils import timezone

from core.crypto import digest
from core.errors import InvalidInput
from core.models import LicenseKey, LogEntry, Product, RoleSyncRequest, Subscription, User
from core.services.datagen import DataSpec, data_generate
from core.services.realtime import subscriptions_notify_expired
from core.services.rolesync.reconcile import role_sync_expired
from tests.staff.conftest import login_staff

postgres_only = pytest.mark.skipif(connection.vendor != "postgresql",
                                   reason="the generator writes with PostgreSQL COPY")
TABLES = (User, Subscription, LicenseKey, LogEntry)


@pytest.fixture
def generated(roles: Any, admin: User) -> Iterator[dict[str, Any]]:
    out = StringIO()
    call_command("generate_data", users=30, subscriptions=75, due=9, keys=400, journal=120,
                 product="gen-test", stdout=out)
    yield {"output": out.getvalue()}
    # ANALYZE (run by the generator) writes pg_class in place, outside the rollback: forget
    # the rows and analyse again so later tests see the tables' real size.
    LicenseKey.objects.all()._raw_delete(connection.alias)
    LogEntry.objects.all()._raw_delete(connection.alias)
    with connection.cursor() as cursor:
        for model in TABLES:
            cursor.execute(f'ANALYZE "{model._meta.db_table}"')


def generated_users() -> Any:
    return User.objects.filter(username__startswith="gen")


@postgres_only
@pytest.mark.django_db
def test_rows_are_created_and_consistent(generated: dict[str, Any]) -> None:
    assert "keys: 400 rows" in generated["output"] and "rows/s" in generated["output"]
    users = generated_users()
    assert users.count() == 30
    assert users.values("username").distinct().count() == 30
    assert users.filter(discord_id__isnull=False).count() == 15  # half linked
    assert not any(u.has_usable_password() for u in users)
    assert {u.registration_ip for u in users} == {"203.0.113.7"}  # decrypts
    # 75 subscriptions over 30 members: three products, one subscription per member each.
    products = Product.objects.filter(slug__startswith="gen-test")
    assert sorted(products.values_list("slug", flat=True)) == ["gen-test", "gen-test-2",
                                                                 "gen-test-3"]
    subscriptions = Subscription.objects.filter(product__in=products)
    assert subscriptions.count() == 75
    now = timezone.now()
    due = subscriptions.filter(expires_at__gt=now - timedelta(hours=1), expires_at__lte=now)
    assert due.count() == 9
    assert due.values("user").distinct().count() == 9  # on distinct members
    # Keys: real digests, unique; one in ten redeemed by the holder of a subscription.
    keys = LicenseKey.objects.filter(product__in=products)
    assert keys.count() == 400
    assert keys.values("code_digest").distinct().count() == 400
    redeemed = keys.filter(status="redeemed")
    assert redeemed.count() == 40
    for key in redeemed:
        assert Subscription.objects.filter(user=key.redeemed_by_id,
                                           product=key.product_id).exists()
    assert keys.first().code.startswith("ZSPB-")
    journal = dict(LogEntry.objects.filter(actor__in=users).values_list("category")
                   .annotate(n=Count("id")).values_list("category", "n"))
    assert journal == {"user": 72, "moderation": 36, "error": 12}
    entry = LogEntry.objects.filter(actor__in=users).first()
    assert entry is not None and entry.ip == "203.0.113.7"
    assert entry.ip_digest == digest("203.0.113.7", purpose="ip")


@postgres_only
@pytest.mark.django_db
def test_the_admin_changelists_and_member_pages_render(generated: dict[str, Any],
                                                       admin: User) -> None:
    client = login_staff(Client(), admin)
    for path in ("licensekey", "user", "useractionentry", "moderationentry",
                 "systemerrorentry", "subscription"):
        response = client.get(f"/admin/core/{path}/")
        assert response.status_code == 200, path
    holder = LicenseKey.objects.filter(status="redeemed").first()
    assert holder is not None
    assert client.get(f"/admin/core/user/{holder.redeemed_by_id}/change/").status_code == 200
    member = Client()
    member.force_login(User.objects.get(pk=holder.redeemed_by_id))
    for page in ("/", "/redeem", "/account", "/api/subscriptions"):
        assert member.get(page).status_code == 200, page


@postgres_only
@pytest.mark.django_db
def test_due_subscriptions_are_what_the_expiry_jobs_see(generated: dict[str, Any],
                                                        settings: Any) -> None:
    settings.DISCORD_ENABLED, settings.DISCORD_BOT_TOKEN, settings.DISCORD_GUILD_ID = (
        True, "test", 1)
    linked_due = Subscription.objects.filter(
        product__slug__startswith="gen-test", user__discord_id__isnull=False,
        expires_at__gt=timezone.now() - timedelta(hours=1), expires_at__lte=timezone.now())
    assert role_sync_expired(queue_drain=False) == linked_due.count() > 0
    assert set(RoleSyncRequest.objects.values_list("user_id", flat=True)) == set(
        linked_due.values_list("user_id", flat=True))
    assert role_sync_expired(queue_drain=False) == 0
    assert subscriptions_notify_expired() == 9


@pytest.mark.django_db
def test_refuses_other_databases_and_bad_counts(roles: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CommandError):
        call_command("generate_data", due=5, subscriptions=2, users=1)
    with pytest.raises(CommandError):
        call_command("generate_data", keys=-1)
    monkeypatch.setattr(connection, "vendor", "sqlite")
    with pytest.raises(InvalidInput, match="PostgreSQL"):
        data_generate(spec=DataSpec(users=1))
