"""Stored text is escaped everywhere it is shown: markup put into every free-text field a
member or staff member can fill (product name, ban reason, key note, release changelog,
Discord name, e-mail, journal data) never comes back as markup, on any member page or on any
admin URL a superuser can open."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import timezone

from core.models import LoaderRelease, Role, Subscription
from core.services.bans import ban_create
from core.services.keys import keys_generate
from core.services.logs import log_event
from core.services.products import product_create
from tests.factories import InviteFactory, UserFactory
from tests.staff.test_site import caller_client, model_visits, site_visits

# An element and an attribute break-out: either one unescaped is a stored XSS.
PAYLOAD = "<img src=x onerror=alert(1)>\"'><script>alert(2)</script>"
RAW = ("<img src=x onerror=alert(1)>", "<script>alert(2)</script>")
BASE = Path(settings.BASE_DIR)


@pytest.fixture
def hostile_world(roles: dict[str, Role]) -> dict[str, Any]:
    boss = UserFactory.create(username="boss", role=roles["admin"], is_superuser=True)
    product = product_create(actor=boss, fields={"name": f"P {PAYLOAD}"[:100], "slug": "evil"})
    member = UserFactory.create(username="member_x", invited_by=boss,
                                email="x@example.com", discord_id=4321,
                                discord_username=PAYLOAD[:32])
    InviteFactory.create(created_by=member)
    ban_create(actor=boss, user=UserFactory.create(username="banned_x"), reason=PAYLOAD)
    keys_generate(actor=boss, product=product, duration=timedelta(days=30), count=2,
                  note=PAYLOAD)
    now = timezone.now()
    Subscription.objects.create(user=member, product=product, started_at=now,
                                expires_at=now + timedelta(days=5))
    LoaderRelease.objects.create(version="1.0.0", file=ContentFile(b"MZ", name="loader.exe"),
                                 sha256="0" * 64, size=2, uploaded_by=boss, changelog=PAYLOAD,
                                 published=True)
    for category in ("user", "moderation", "error"):
        log_event(category=category, action=f"test.{category}", actor=boss, target=member,
                  data={"reason": PAYLOAD, PAYLOAD[:20]: "key"})
    return {"boss": boss, "member": member}


def _raw_markup(html: str) -> list[str]:
    return [fragment for fragment in RAW if fragment in html]


@pytest.mark.django_db
def test_member_pages_escape_stored_text(hostile_world: dict[str, Any]) -> None:
    client = Client()
    client.force_login(hostile_world["member"])
    shown = 0
    for url in ("/", "/invites", "/redeem", "/discord", "/download", "/machine", "/account"):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        body = response.content.decode()
        assert _raw_markup(body) == [], url
        shown += "onerror" in body
    assert shown >= 2  # the payload really is on the pages, escaped
    # The API returns the text as it is stored, as JSON that no browser renders as a page.
    for url in ("/api/subscriptions", "/api/auth/me", "/api/loader/latest"):
        response = client.get(url)
        assert response["Content-Type"] == "application/json; charset=utf-8", url
        assert response["X-Content-Type-Options"] == "nosniff", url


def test_page_scripts_put_api_text_into_the_page_as_text_only() -> None:
    """The pages' modules render what the API returns (product names, changelogs...): never
    through an HTML-parsing sink."""
    sinks = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
             "new Function")
    scripts = sorted((BASE / "api" / "static" / "zspb").rglob("*.js"))
    assert scripts
    found = [f"{path.name}: {sink}" for path in scripts for sink in sinks
             if sink in path.read_text()]
    assert found == []


@pytest.mark.django_db
def test_every_admin_page_escapes_stored_text(
    hostile_world: dict[str, Any], roles: dict[str, Role]
) -> None:
    client, user = caller_client("superuser", roles)
    assert user is not None
    visits = site_visits(user) + model_visits(user, hostile_world["boss"])
    assert len(visits) > 60
    problems = []
    shown = 0
    for visit in visits:
        response = client.get(visit.url)
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        body = response.content.decode()
        problems += [f"{visit.url}: {fragment}" for fragment in _raw_markup(body)]
        shown += "onerror" in body
    assert problems == []
    assert shown >= 5
