"""Two-factor login of the staff admin: password first, then TOTP; enrolment with a QR code and
backup codes; throttling and replay; device reset by an Admin."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.errors import InvalidInput, RateLimited
from core.models import LogEntry
from core.services.twofactor import (
    twofactor_confirm_enrolment,
    twofactor_start_enrolment,
    twofactor_verify,
)
from tests.factories import UserFactory
from tests.staff.conftest import login_staff, totp_device, totp_token

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _no_throttle_delay(settings):
    # django-otp doubles a delay after each wrong code; the throttling test turns it back on.
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    settings.OTP_STATIC_THROTTLE_FACTOR = 0


def password_login(client: Client, username: str, next_url: str = "/admin/") -> None:
    response = client.post(f"/admin/login/?next={next_url}",
                           {"username": username, "password": PASSWORD, "next": next_url})
    assert response.status_code == 302, response.content[:500]


@pytest.mark.django_db
def test_password_then_totp_opens_the_admin(staff_user):
    user = staff_user("moderator")
    device = totp_device(user)
    client = Client()
    password_login(client, user.username, "/admin/core/user/")

    response = client.get("/admin/core/user/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/otp/verify/?next=%2Fadmin%2Fcore%2Fuser%2F"

    page = client.get(response["Location"])
    assert page.status_code == 200
    assert b'name="token"' in page.content

    wrong = client.post("/admin/otp/verify/", {"token": "000000", "next": "/admin/core/user/"})
    assert wrong.status_code == 200
    assert b"not valid" in wrong.content
    assert client.get("/admin/").status_code == 302

    ok = client.post("/admin/otp/verify/",
                     {"token": totp_token(device), "next": "/admin/core/user/"})
    assert ok.status_code == 302
    assert ok["Location"] == "/admin/core/user/"
    assert client.get("/admin/core/user/").status_code == 200
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_login_page_of_a_password_only_session_goes_to_the_otp_step(staff_user):
    user = staff_user("support")
    totp_device(user)
    client = login_staff(Client(), user, verified=False)
    response = client.get("/admin/login/?next=/admin/core/ban/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/otp/verify/?next=%2Fadmin%2Fcore%2Fban%2F"


@pytest.mark.django_db
def test_a_token_cannot_be_replayed(staff_user):
    user = staff_user("support")
    device = totp_device(user)
    token = totp_token(device)
    first = login_staff(Client(), user, verified=False)
    assert first.post("/admin/otp/verify/", {"token": token}).status_code == 302
    second = login_staff(Client(), user, verified=False)
    again = second.post("/admin/otp/verify/", {"token": token})
    assert again.status_code == 200
    assert second.get("/admin/").status_code == 302


@pytest.mark.django_db
def test_wrong_codes_are_throttled(settings, staff_user):
    settings.OTP_TOTP_THROTTLE_FACTOR = 30
    user = staff_user("support")
    device = totp_device(user)
    client = login_staff(Client(), user, verified=False)
    client.post("/admin/otp/verify/", {"token": "000000"})
    blocked = client.post("/admin/otp/verify/", {"token": totp_token(device)})
    assert blocked.status_code == 200
    assert b"Too many wrong codes" in blocked.content
    device.refresh_from_db()
    assert device.throttling_failure_count == 1


@pytest.mark.django_db
def test_a_throttled_code_says_how_long_and_a_correct_one_passes_after_the_wait(
        settings, staff_user):
    settings.OTP_TOTP_THROTTLE_FACTOR = 20
    user = staff_user("support")
    device = totp_device(user)
    client = login_staff(Client(), user, verified=False)
    client.post("/admin/otp/verify/", {"token": "000000"})
    blocked = client.post("/admin/otp/verify/", {"token": totp_token(device)})
    assert blocked.status_code == 200
    assert re.search(rb"wait (19|20) seconds", blocked.content), blocked.content[-3000:]

    with pytest.raises(RateLimited) as refused:
        twofactor_verify(user=user, token=totp_token(device))
    assert refused.value.details["retry_after"] in (19, 20)

    # The wait is over: the same correct code is accepted.
    device.refresh_from_db()
    device.throttling_failure_timestamp -= timedelta(seconds=21)
    device.save(update_fields=["throttling_failure_timestamp"])
    ok = client.post("/admin/otp/verify/", {"token": totp_token(device)})
    assert ok.status_code == 302, ok.content[-2000:]
    assert client.get("/admin/").status_code == 200
    device.refresh_from_db()
    assert device.throttling_failure_count == 0


@pytest.mark.django_db
def test_a_throttled_enrolment_code_says_how_long(settings, staff_user):
    settings.OTP_TOTP_THROTTLE_FACTOR = 20
    user = staff_user("support")
    device = twofactor_start_enrolment(user=user)
    with pytest.raises(InvalidInput):
        twofactor_confirm_enrolment(user=user, token="000000")
    with pytest.raises(RateLimited) as refused:
        twofactor_confirm_enrolment(user=user, token=totp_token(device))
    assert refused.value.details["retry_after"] in (19, 20)
    assert "seconds" in str(refused.value.message)
    device.refresh_from_db()
    device.throttling_failure_timestamp -= timedelta(seconds=21)
    device.save(update_fields=["throttling_failure_timestamp"])
    assert twofactor_confirm_enrolment(user=user, token=totp_token(device)).backup_codes


@pytest.mark.django_db
def test_enrolment_shows_a_qr_code_then_backup_codes_once(staff_user):
    user = staff_user("admin")
    client = Client()
    password_login(client, user.username)
    response = client.get("/admin/")
    assert response["Location"] == "/admin/otp/enrol/?next=%2Fadmin%2F"

    page = client.get(response["Location"])
    assert page.status_code == 200
    assert b'src="data:image/svg+xml;base64,' in page.content
    pending = TOTPDevice.objects.get(user=user)
    assert not pending.confirmed
    secret = re.search(rb'id="otp-secret">([A-Z2-7 ]+)<', page.content).group(1)
    assert secret.replace(b" ", b"").decode() == pending.config_url.split("secret=")[1][:32]
    # A reload keeps the same secret: a phone that already scanned it still works.
    client.get("/admin/otp/enrol/")
    assert TOTPDevice.objects.filter(user=user).count() == 1

    assert b"not valid" in client.post("/admin/otp/enrol/", {"token": "123456"}).content
    assert client.get("/admin/").status_code == 302

    token = f"{totp(pending.bin_key):06d}"
    done = client.post("/admin/otp/enrol/", {"token": token, "next": "/admin/"})
    assert done.status_code == 200
    codes = re.findall(rb'<li class="select-all">([a-z2-7]+)</li>', done.content)
    assert len(codes) == 10
    assert set(StaticToken.objects.filter(device__user=user).values_list("token", flat=True)) \
        == {c.decode() for c in codes}
    pending.refresh_from_db()
    assert pending.confirmed
    assert LogEntry.objects.filter(action="staff.2fa_enrol", actor=user).exists()
    # The same session is now verified; the codes are never shown again.
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/otp/enrol/")["Location"] == "/admin/otp/verify/"

    # A backup code opens a new session once.
    other = login_staff(Client(), user, verified=False)
    assert other.post("/admin/otp/verify/", {"token": codes[0].decode().upper()}).status_code \
        == 302
    assert other.get("/admin/").status_code == 200
    third = login_staff(Client(), user, verified=False)
    assert third.post("/admin/otp/verify/", {"token": codes[0].decode()}).status_code == 200
    assert LogEntry.objects.get(action="staff.2fa_backup_code_used").data == {
        "backup_codes_left": 9}


@pytest.mark.django_db
def test_non_staff_never_reach_the_otp_pages(member):
    client = Client()
    client.force_login(member, backend="django.contrib.auth.backends.ModelBackend")
    for url in ("/admin/otp/enrol/", "/admin/otp/verify/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == "/admin/login/"
    assert not TOTPDevice.objects.filter(user=member).exists()
    assert client.get("/admin/")["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_anonymous_otp_pages_send_to_login(db):
    assert Client().get("/admin/otp/verify/")["Location"] == "/admin/login/"


@pytest.mark.django_db
def test_cancel_logs_out(staff_user):
    user = staff_user("support")
    totp_device(user)
    client = login_staff(Client(), user, verified=False)
    assert client.post("/admin/otp/cancel/").status_code == 302
    assert client.get("/admin/otp/verify/")["Location"] == "/admin/login/"


@pytest.mark.django_db
def test_admin_resets_a_staff_device(staff_client, staff_user):
    admin = staff_client("admin")
    moderator = staff_user("moderator", "mod_lost_phone")
    mod_client = login_staff(Client(), moderator)
    StaticDevice.objects.create(user=moderator, name="Backup codes", confirmed=True)
    assert mod_client.get("/admin/").status_code == 200

    page = admin.post("/admin/core/user/", {"action": "reset_two_factor",
                                            "_selected_action": [moderator.pk]})
    assert page.status_code == 200
    assert b'name="apply"' in page.content
    assert TOTPDevice.objects.filter(user=moderator).exists()

    done = admin.post("/admin/core/user/", {"action": "reset_two_factor", "apply": "1",
                                            "_selected_action": [moderator.pk]})
    assert done.status_code == 302
    assert not TOTPDevice.objects.filter(user=moderator).exists()
    assert not StaticDevice.objects.filter(user=moderator).exists()
    entry = LogEntry.objects.get(action="staff.2fa_reset")
    assert (entry.category, entry.actor_id, entry.target_id) == ("moderation", admin.user.pk,
                                                                 moderator.pk)
    assert entry.data == {"removed": 2}
    # The verified session lost its device: the next page asks to enrol again.
    assert mod_client.get("/admin/")["Location"] == "/admin/otp/enrol/?next=%2Fadmin%2F"


@pytest.mark.django_db
def test_device_reset_follows_rank_and_capability(staff_client, staff_user, roles):
    peer = staff_user("admin", "other_admin")
    totp_device(peer)
    admin = staff_client("admin")
    admin.post("/admin/core/user/", {"action": "reset_two_factor", "apply": "1",
                                     "_selected_action": [peer.pk]}, follow=True)
    assert TOTPDevice.objects.filter(user=peer).exists()

    support = staff_user("support", "support_target")
    totp_device(support)
    moderator = staff_client("moderator")
    response = moderator.post("/admin/core/user/", {"action": "reset_two_factor", "apply": "1",
                                                    "_selected_action": [support.pk]})
    assert response.status_code == 302
    assert TOTPDevice.objects.filter(user=support).exists()
    assert not LogEntry.objects.filter(action="staff.2fa_reset").exists()

    boss = UserFactory.create(username="root", role=roles["admin"], is_superuser=True)
    root = login_staff(Client(), boss)
    root.post("/admin/core/user/", {"action": "reset_two_factor", "apply": "1",
                                    "_selected_action": [peer.pk]})
    assert not TOTPDevice.objects.filter(user=peer).exists()
