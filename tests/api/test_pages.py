from __future__ import annotations

import pytest

from core.models import Invite, User
from core.services.invites import invite_create


@pytest.mark.django_db
class TestRegisterPage:
    def test_invite_link_prefills_and_registers(self, client, admin):
        invite = invite_create(creator=admin)
        page = client.get(f"/register?invite={invite.code}")
        assert page.status_code == 200 and invite.code in page.content.decode()
        response = client.post("/register", {"invite": invite.code, "username": "newbie",
                                              "password": "a fine passphrase"},
                               REMOTE_ADDR="198.51.100.20")
        assert response.status_code == 302
        user = User.objects.get(username="newbie")
        assert user.invited_by == admin and user.registration_ip == "198.51.100.20"
        assert "newbie" in client.get("/").content.decode()

    def test_errors_are_shown_and_nothing_is_lost(self, client, admin):
        invite = invite_create(creator=admin)
        weak = client.post("/register", {"invite": invite.code, "username": "newbie",
                                          "password": "123"})
        assert weak.status_code == 200 and "too short" in weak.content.decode()
        assert 'value="newbie"' in weak.content.decode()
        bad = client.post("/register", {"invite": "INV-NOPE", "username": "newbie",
                                         "password": "a fine passphrase"})
        assert "not valid" in bad.content.decode()
        assert Invite.objects.get().status == "active"


def test_client_ip_ignores_spoofed_forwarded_for(rf, settings):
    from api.net import client_ip

    settings.NUM_PROXIES = 1
    request = rf.get("/", REMOTE_ADDR="10.0.0.1",
                     HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9")
    assert client_ip(request) == "203.0.113.9"
    settings.NUM_PROXIES = 0
    assert client_ip(request) == "10.0.0.1"
