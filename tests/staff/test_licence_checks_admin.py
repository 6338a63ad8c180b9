"""Licence checks per day: a read-only page for staff who see statistics."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from core.models import LicenseCheckDay, Subscription
from tests.factories import UserFactory

LIST = "/admin/core/licensecheckday/"


@pytest.fixture
def rows(roles: Any, product: Any) -> list[LicenseCheckDay]:
    member = UserFactory.create(username="checker", role=roles["user"])
    subscription = Subscription.objects.create(user=member, product=product,
                                               expires_at=timezone.now() + timedelta(days=9))
    today = timezone.localdate()
    return LicenseCheckDay.objects.bulk_create([
        LicenseCheckDay(subscription=subscription, day=today, count=4242),
        LicenseCheckDay(subscription=subscription, day=today - timedelta(days=1), count=7),
    ])


@pytest.mark.django_db
def test_support_sees_the_counts_read_only(staff_client: Any, rows: Any) -> None:
    client = staff_client("support")
    page = client.get(LIST).content.decode()
    assert "checker" in page and "4242" in page and "loader" in page
    assert client.get(f"{LIST}?subscription__user=checker").status_code == 200
    detail = client.get(f"{LIST}{rows[0].pk}/change/")
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()
    assert client.get(f"{LIST}add/").status_code == 403
    assert client.post(f"{LIST}{rows[0].pk}/delete/", {"post": "yes"}).status_code == 403
    assert LicenseCheckDay.objects.count() == 2


@pytest.mark.django_db
def test_members_cannot_see_it(client: Any, member: Any, rows: Any) -> None:
    client.force_login(member)
    assert client.get(LIST).status_code in (302, 403)
