"""Products go through core.services.products: journaled, and a change of Discord role or of
the active flag queues a role sync for the members who hold the product."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from core.errors import Conflict, InvalidInput, PermissionDenied
from core.models import LogEntry, Product, RoleSyncRequest, Subscription, User
from core.services.products import product_create, product_update
from tests.factories import UserFactory

PRODUCTS = "/admin/core/product/"


@pytest.fixture
def holders(roles: Any, product: Product) -> dict[str, User]:
    """A linked member with an active subscription, an unlinked one, a lapsed linked one."""
    now = timezone.now()
    people = {
        "active": UserFactory.create(username="active", discord_id=111),
        "unlinked": UserFactory.create(username="unlinked"),
        "lapsed": UserFactory.create(username="lapsed", discord_id=222),
    }
    for name, user in people.items():
        ends = now - timedelta(days=1) if name == "lapsed" else now + timedelta(days=5)
        Subscription.objects.create(user=user, product=product, expires_at=ends)
    return people


def form(product: Product, **over: Any) -> dict[str, Any]:
    data = {"name": product.name, "slug": product.slug,
            "is_active": "on" if product.is_active else "",
            "discord_role_id": product.discord_role_id or ""}
    return {**data, **over}


def queued() -> set[str]:
    return set(RoleSyncRequest.objects.values_list("user__username", flat=True))


@pytest.mark.django_db
def test_changing_the_discord_role_queues_a_sync_for_holders(staff_client: Any,
                                                             product: Product,
                                                             holders: dict[str, User]) -> None:
    client = staff_client("admin")
    response = client.post(f"{PRODUCTS}{product.pk}/change/",
                           form(product, discord_role_id="123456789012345678"))
    assert response.status_code == 302
    product.refresh_from_db()
    assert product.discord_role_id == 123456789012345678
    assert queued() == {"active"}
    entry = LogEntry.objects.get(action="product.update")
    assert entry.actor == client.user
    assert entry.data["changed"] == ["discord_role_id"]
    assert entry.data["before"] == {"discord_role_id": None}
    assert entry.data["syncs_queued"] == 1


@pytest.mark.django_db
def test_deactivating_queues_a_sync_and_renaming_does_not(staff_client: Any, product: Product,
                                                          holders: dict[str, User]) -> None:
    client = staff_client("admin")
    client.post(f"{PRODUCTS}{product.pk}/change/", form(product, name="Loader Pro"))
    assert queued() == set()
    assert LogEntry.objects.get(action="product.update").data["changed"] == ["name"]
    product.refresh_from_db()
    client.post(f"{PRODUCTS}{product.pk}/change/", form(product, is_active=""))
    product.refresh_from_db()
    assert product.is_active is False
    assert queued() == {"active"}


@pytest.mark.django_db
def test_add_page_creates_through_the_service(staff_client: Any, roles: Any) -> None:
    client = staff_client("admin")
    response = client.post(f"{PRODUCTS}add/", {"name": "Spoofer", "slug": "spoofer",
                                               "is_active": "on", "discord_role_id": ""})
    assert response.status_code == 302
    created = Product.objects.get(slug="spoofer")
    entry = LogEntry.objects.get(action="product.create")
    assert entry.data["product_id"] == created.pk and entry.actor == client.user


@pytest.mark.django_db
def test_a_refusal_shows_on_the_form(staff_client: Any, product: Product) -> None:
    client = staff_client("admin")
    response = client.post(f"{PRODUCTS}{product.pk}/change/",
                           form(product, discord_role_id="-5"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    product.refresh_from_db()
    assert product.discord_role_id is None
    assert not LogEntry.objects.filter(action="product.update").exists()


def test_product_service_rules(db: None, roles: Any, admin: User, moderator: User,
                               product: Product) -> None:
    with pytest.raises(PermissionDenied):
        product_create(actor=moderator, fields={"name": "X", "slug": "x"})
    with pytest.raises(PermissionDenied):
        product_update(actor=moderator, product=product, changes={"is_active": False})
    with pytest.raises(Conflict):
        product_create(actor=admin, fields={"name": "Other", "slug": product.slug})
    with pytest.raises(InvalidInput):
        product_create(actor=admin, fields={"name": " ", "slug": "blank"})
    with pytest.raises(InvalidInput):
        product_update(actor=admin, product=product, changes={"discord_role_id": 0})
    unchanged = product_update(actor=admin, product=product, changes={"name": product.name})
    assert unchanged.pk == product.pk
    assert not LogEntry.objects.filter(action="product.update").exists()
