"""Staff create invites in the admin, within their monthly quota, through invite_create."""

from __future__ import annotations

from typing import Any

import pytest

from core.models import Invite, LogEntry

INVITES = "/admin/core/invite/"
CREATE = f"{INVITES}create/"


@pytest.mark.django_db
def test_changelist_offers_create_invite(staff_client: Any) -> None:
    page = staff_client("support").get(INVITES)
    assert page.status_code == 200
    assert CREATE in page.content.decode()


@pytest.mark.django_db
def test_get_only_asks_and_post_creates_with_the_link_shown(staff_client: Any,
                                                            settings: Any) -> None:
    settings.SITE_URL = "https://zspb.example.test"
    client = staff_client("support")
    page = client.get(CREATE)
    assert page.status_code == 200 and b'name="apply"' in page.content
    assert not Invite.objects.exists()
    response = client.post(CREATE, {"apply": "1"}, follow=True)
    invite = Invite.objects.get()
    assert invite.created_by == client.user
    assert f"https://zspb.example.test/register?invite={invite.code}" in response.content.decode()
    assert LogEntry.objects.filter(action="invite.create", actor=client.user).exists()


@pytest.mark.django_db
def test_quota_is_the_staff_members_own(staff_client: Any, roles: Any) -> None:
    client = staff_client("support")  # two invites a month
    quota = roles["support"].invite_quota
    for _ in range(quota):
        client.post(CREATE, {"apply": "1"})
    assert Invite.objects.filter(created_by=client.user).count() == quota
    refused = client.post(CREATE, {"apply": "1"}, follow=True)
    assert Invite.objects.filter(created_by=client.user).count() == quota
    assert "You have used all your invites for this month." in refused.content.decode()


@pytest.mark.django_db
def test_a_member_session_cannot_create_here(client: Any, member: Any) -> None:
    client.force_login(member, backend="django.contrib.auth.backends.ModelBackend")
    response = client.post(CREATE, {"apply": "1"})
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert not Invite.objects.exists()


@pytest.mark.django_db
def test_expired_invites_are_shown_and_filtered_as_expired(staff_client: Any,
                                                           member: Any) -> None:
    """The list showed the stored status: an invite past its expiry still read "Active"."""
    from datetime import timedelta

    from django.utils import timezone

    from tests.factories import InviteFactory

    past = timezone.now() - timedelta(days=10)
    expired = InviteFactory.create(created_by=member, created_at=past,
                                   expires_at=past + timedelta(days=7))
    usable = InviteFactory.create(created_by=member)
    client = staff_client("support")

    def listed(**params: Any) -> list[int]:
        return [i.pk for i in client.get(INVITES, params).context["cl"].result_list]

    assert listed(state="expired") == [expired.pk]
    assert listed(state="usable") == [usable.pk]
    row = client.get(INVITES, {"state": "expired"}).content.decode()
    assert "Expired" in row


@pytest.mark.django_db
def test_sidebar_links_to_create_invite(staff_client: Any) -> None:
    assert CREATE in staff_client("support").get("/admin/").content.decode()


@pytest.mark.django_db
def test_change_page_shows_the_status_as_words(staff_client: Any) -> None:
    client = staff_client("moderator")
    client.post(CREATE, {"apply": "1"})
    invite = Invite.objects.get()
    page = client.get(f"{INVITES}{invite.pk}/change/").content.decode()
    assert "Active" in page
    assert "(&#x27;active&#x27;" not in page and "('active'" not in page
