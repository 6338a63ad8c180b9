"""The bootstrap administrator is a superuser: the raw Django add/delete pages and
`delete_selected` stay closed to them too, so every domain write goes through a service."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib import admin
from django.core.files.base import ContentFile
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone

from core.models import (
    Ban,
    Invite,
    LicenseKey,
    LoaderRelease,
    LogEntry,
    ModerationEntry,
    Product,
    Role,
    Subscription,
    SystemErrorEntry,
    User,
    UserActionEntry,
)
from core.services.bans import ban_create
from core.services.keys import keys_generate
from core.services.users import admin_bootstrap
from staff.base import NOBODY, staff_can
from tests.factories import InviteFactory, UserFactory
from tests.staff.conftest import login_staff

# Domain models whose rows only services create or delete.
DOMAIN = [User, Ban, Invite, LicenseKey, Subscription, Product, LoaderRelease, Role,
          UserActionEntry, ModerationEntry, SystemErrorEntry]
# Those whose add page is a service-backed form (kept, and checked elsewhere).
SERVICE_ADD = {Product, LoaderRelease, Role}


@pytest.fixture
def superuser(roles: dict[str, Role]) -> User:
    user, _password = admin_bootstrap(username="root", password="a fine passphrase")
    assert user.is_superuser and user.role == roles["admin"]
    return user


@pytest.fixture
def rows(superuser: User, product: Product, settings: Any, tmp_path: Any) -> dict[type, Any]:
    settings.MEDIA_ROOT = tmp_path
    member = UserFactory.create(username="plain")
    banned = UserFactory.create(username="banned")
    ban = ban_create(actor=superuser, user=banned, reason="spam")
    keys_generate(actor=superuser, product=product, duration=timedelta(days=1), count=1)
    subscription = Subscription.objects.create(user=member, product=product,
                                               expires_at=timezone.now() + timedelta(days=3))
    release = LoaderRelease.objects.create(version="1.0", file=ContentFile(b"MZ", "l.exe"),
                                           sha256="0" * 64, size=2)
    journal: dict[type, Any] = {
        proxy: proxy.objects.create(category=proxy.category_value, action="x.y")
        for proxy in (UserActionEntry, ModerationEntry, SystemErrorEntry)}
    return {User: member, Ban: ban, Invite: InviteFactory.create(created_by=member),
            LicenseKey: LicenseKey.objects.first(), Subscription: subscription,
            Product: product, LoaderRelease: release, Role: Role.objects.get(key="user"),
            **journal}


def test_a_capability_nobody_holds_is_denied_to_superusers(superuser: User) -> None:
    request = RequestFactory().get("/admin/")
    request.user = superuser
    assert staff_can(request, NOBODY) is False
    assert staff_can(request, "manage_roles") is True


@pytest.mark.django_db
def test_superuser_gets_no_raw_add_or_delete_page(superuser: User,
                                                  rows: dict[type, Any]) -> None:
    client = login_staff(Client(), superuser)
    problems = []
    for model in DOMAIN:
        info = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        if model not in SERVICE_ADD:
            status = client.get(reverse(f"{info}_add")).status_code
            if status != 403:
                problems.append(f"{model.__name__} add: {status}")
        obj = rows[model]
        status = client.get(reverse(f"{info}_delete", args=[obj.pk])).status_code
        if status != 403:
            problems.append(f"{model.__name__} delete: {status}")
        changelist = client.get(reverse(f"{info}_changelist"))
        assert changelist.status_code == 200, model
        action_choices = [name for name, _label in changelist.context["action_form"]
                          .fields["action"].choices] if changelist.context.get(
                              "action_form") else []
        if "delete_selected" in action_choices:
            problems.append(f"{model.__name__} offers delete_selected")
    assert problems == [], "\n".join(problems)


@pytest.mark.django_db
def test_deleting_a_ban_through_the_admin_is_impossible(superuser: User,
                                                        rows: dict[type, Any]) -> None:
    """It used to leave the member deactivated with no ban."""
    client = login_staff(Client(), superuser)
    ban = rows[Ban]
    url = reverse("admin:core_ban_delete", args=[ban.pk])
    assert client.post(url, {"post": "yes"}).status_code == 403
    changelist = reverse("admin:core_ban_changelist")
    client.post(changelist, {"action": "delete_selected", "_selected_action": [ban.pk],
                             "post": "yes"})
    ban.refresh_from_db()
    assert ban.lifted_at is None and ban.user.is_active is False
    assert not LogEntry.objects.filter(action="user.unban").exists()


@pytest.mark.django_db
def test_superuser_add_pages_that_used_to_fail_now_refuse(superuser: User,
                                                          rows: dict[type, Any]) -> None:
    """The "+" of subscriptions, invites and keys answered 500 (nothing to save them with)."""
    client = login_staff(Client(), superuser)
    for name in ("subscription", "invite", "licensekey", "user", "ban"):
        response = client.post(reverse(f"admin:core_{name}_add"), {})
        assert response.status_code == 403, name
    assert not admin.site._registry[Subscription].has_add_permission(
        _request(superuser))


def _request(user: User) -> Any:
    request = RequestFactory().get("/admin/")
    request.user = user
    return request
