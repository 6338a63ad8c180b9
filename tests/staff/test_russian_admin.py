"""The staff admin in Russian: model and field names, status labels, durations and unfold's
own words come out translated (issue 9, defect 8)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps
from django.test import Client
from django.utils import translation

from core.models import Invite, LicenseKey, Product, Role, User
from core.services.bans import ban_create
from core.services.invites import invite_create
from core.services.keys import key_redeem, keys_generate
from tests.factories import UserFactory

CYRILLIC = re.compile("[\u0400-\u04ff]")
# Names that read the same in Russian.
LATIN_ON_PURPOSE = {"Discord ID", "sha256", "ID", "HWID"}


def _russian(text: Any) -> bool:
    return bool(CYRILLIC.search(str(text))) or str(text) in LATIN_ON_PURPOSE


def test_every_model_field_and_choice_of_core_is_russian() -> None:
    untranslated = []
    with translation.override("ru"):
        for model in apps.get_app_config("core").get_models():
            opts = model._meta
            for name in ("verbose_name", "verbose_name_plural"):
                if not _russian(getattr(opts, name)):
                    untranslated.append(f"{opts.label}.{name}: {getattr(opts, name)}")
            for field in opts.get_fields():
                if not hasattr(field, "verbose_name") or field.name == "id":
                    continue
                if field.model is not model or field.auto_created:
                    continue  # inherited from Django (AbstractUser) or a reverse relation
                if not _russian(field.verbose_name):
                    untranslated.append(f"{opts.label}.{field.name}: {field.verbose_name}")
                for _value, label in getattr(field, "flatchoices", None) or []:
                    if not _russian(label):
                        untranslated.append(f"{opts.label}.{field.name} choice: {label}")
    assert not untranslated, "\n".join(untranslated)


def _get(client: Client, url: str) -> str:
    response = client.get(url, HTTP_ACCEPT_LANGUAGE="ru")
    assert response.status_code == 200, url
    return response.content.decode()


def test_admin_pages_read_in_russian(
    staff_client: Callable[..., Client], product: Product, member: User
) -> None:
    client = staff_client("admin")
    admin_user: User = client.user  # type: ignore[attr-defined]
    keys_generate(actor=admin_user, product=product, duration=timedelta(days=30), count=2)
    invite_create(creator=admin_user)
    ban_create(actor=admin_user, user=member, reason="spam")
    key = LicenseKey.objects.first()
    invite = Invite.objects.first()
    assert key is not None and invite is not None

    keys = _get(client, "/admin/core/licensekey/")
    assert "Свободен" in keys  # the status badge
    assert "30 дней, не активирован" in keys  # the duration, not "30 days"
    assert "Фильтры" in keys and ">Filters<" not in keys  # unfold's own word
    assert "Key #" not in _get(client, f"/admin/core/licensekey/{key.pk}/change/")

    invites = _get(client, "/admin/core/invite/")
    assert "Активно" in invites
    assert "Invite #" not in _get(client, f"/admin/core/invite/{invite.pk}/change/")

    bans = _get(client, "/admin/core/ban/")
    assert "Баны" in bans and "Ban of" not in bans

    role = Role.objects.get(key="user")
    page = _get(client, f"/admin/core/role/{role.pk}/change/")
    for label in ("Ранг", "Квота приглашений", "Права"):
        assert label in page
    assert "Invites per calendar month" not in page


@pytest.fixture
def seeded(staff_client: Callable[..., Client], product: Product, member: User) -> Client:
    """An admin's client over one row of each list: keys, a subscription, an invite, a ban."""
    client = staff_client("admin")
    admin_user: User = client.user  # type: ignore[attr-defined]
    batch = keys_generate(actor=admin_user, product=product, duration=timedelta(days=30),
                          count=2)
    key_redeem(user=UserFactory.create(role=member.role), code=batch.codes[0])
    invite_create(creator=admin_user)
    ban_create(actor=admin_user, user=member, reason="spam")
    return client


@pytest.mark.parametrize("url", ["/admin/core/licensekey/", "/admin/core/subscription/",
                                 "/admin/core/invite/", "/admin/core/ban/",
                                 "/admin/core/role/", "/admin/core/product/"])
def test_changelist_headers_are_russian(seeded: Client, url: str) -> None:
    page = _get(seeded, url)
    headers = re.findall(r'<th[^>]*scope="col"[^>]*>(.*?)</th>', page, flags=re.S)
    # Material icon names (sorting arrows) are ligatures, not words.
    texts = [re.sub(r"<span[^>]*material-symbols[^>]*>[^<]*</span>|<[^>]+>|\s+", " ",
                    header).strip() for header in headers]
    assert texts, f"{url}: no column headers found"
    english = [text for text in texts if text and not _russian(text)]
    assert not english, f"{url}: {english}"
