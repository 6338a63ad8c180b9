from __future__ import annotations

import hashlib
import os
import time
from datetime import timedelta

import pytest
from django.core import signing
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.models import LoaderRelease, LogEntry, Subscription
from core.services.bans import ban_create
from core.services.releases import LINK_SALT, release_create, release_publish
from tests.api.conftest import assert_error
from tests.factories import UserFactory

LATEST = "/api/loader/latest"
LINK = "/api/loader/download-link"
CONTENT = os.urandom(300_000)


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def release(admin, media):
    created = release_create(actor=admin, uploaded_file=SimpleUploadedFile("setup.exe", CONTENT),
                             version="3.2.1", changelog="Fixes")
    return release_publish(actor=admin, release_id=created.pk, published=True)


def _subscribe(user, product, days=30):
    return Subscription.objects.create(user=user, product=product,
                                       expires_at=timezone.now() + timedelta(days=days))


def _link(api_as, user):
    response = api_as(user).post(LINK)
    assert response.status_code == 200, response.content
    return response.json()


def _download(client, url):
    response = client.get(url)
    body = b"".join(response.streaming_content) if response.status_code == 200 else None
    return response, body


@pytest.mark.django_db
class TestLatest:
    def test_needs_a_session(self, client, release):
        assert_error(client.get(LATEST), 401, "not_authenticated")

    def test_none_published_is_404(self, api_as, member, admin, media):
        release_create(actor=admin, uploaded_file=SimpleUploadedFile("a.exe", b"x"),
                       version="0.1")
        assert_error(api_as(member).get(LATEST), 404, "not_found")

    def test_metadata_of_the_latest(self, api_as, member, release):
        body = api_as(member).get(LATEST).json()
        assert body == {"version": "3.2.1", "sha256": hashlib.sha256(CONTENT).hexdigest(),
                        "size": len(CONTENT), "changelog": "Fixes",
                        "created_at": body["created_at"]}
        # the JSON encoder keeps milliseconds
        delta = parse_datetime(body["created_at"]) - release.created_at
        assert abs(delta) < timedelta(milliseconds=1)

    def test_query_count_does_not_grow(self, api_as, member, admin, release,
                                       django_assert_max_num_queries):
        api = api_as(member)
        with CaptureQueriesContext(connection) as few:
            assert api.get(LATEST).status_code == 200
        older = timezone.now() - timedelta(days=1)
        LoaderRelease.objects.bulk_create(
            LoaderRelease(version=f"0.{i}", file=f"loader/old-{i}.exe", sha256="0" * 64,
                          size=1, published=i % 2 == 0, created_at=older - timedelta(hours=i))
            for i in range(50)
        )
        with django_assert_max_num_queries(len(few.captured_queries)):
            response = api.get(LATEST)
        assert response.json()["version"] == "3.2.1"
        with django_assert_max_num_queries(3):  # session, user, release
            api.get(LATEST)


@pytest.mark.django_db
class TestDownload:
    def test_link_needs_session_and_csrf(self, client, api_as, member, product, release):
        _subscribe(member, product)
        assert_error(client.post(LINK), 401)
        api = api_as(member)
        assert_error(api.client.post(LINK), 403, "forbidden")  # no X-CSRFToken

    def test_no_subscription_refused(self, api_as, member, product, release):
        body = assert_error(api_as(member).post(LINK), 403, "forbidden")
        assert body["details"] == {"reason": "no_active_subscription"}
        _subscribe(member, product, days=-1)
        assert_error(api_as(member).post(LINK), 403, "forbidden")

    def test_active_subscription_streams_the_exact_bytes(self, api_as, client, member, product,
                                                         release, settings):
        _subscribe(member, product)
        link = _link(api_as, member)
        assert link["url"].startswith("/api/loader/download/")
        expires = parse_datetime(link["expires_at"])
        assert expires is not None
        ttl = settings.LOADER_LINK_TTL_SECONDS
        assert timedelta(seconds=ttl - 5) < expires - timezone.now() <= timedelta(seconds=ttl)
        response, body = _download(client, link["url"])  # no session needed
        assert response.status_code == 200
        assert body == CONTENT
        assert response["Content-Length"] == str(len(CONTENT))
        assert response["Content-Type"] == "application/octet-stream"
        disposition = response["Content-Disposition"]
        assert disposition.startswith("attachment;") and "3.2.1" in disposition
        assert "no-store" in response["Cache-Control"]
        entry = LogEntry.objects.get(action="loader.download")
        assert entry.category == "user" and entry.actor == member
        assert entry.data == {"release_id": release.pk, "version": "3.2.1"}

    def test_expired_link_is_404(self, api_as, client, member, product, release, settings,
                                 monkeypatch):
        _subscribe(member, product)
        url = _link(api_as, member)["url"]
        later = time.time() + settings.LOADER_LINK_TTL_SECONDS + 1
        monkeypatch.setattr(time, "time", lambda: later)  # signing reads time.time()
        response, _ = _download(client, url)
        body = assert_error(response, 404, "not_found")
        assert body["details"] == {"reason": "expired"}

    def test_forged_links_are_403(self, api_as, client, member, admin, roles, product,
                                  release, media):
        _subscribe(member, product)
        url = _link(api_as, member)["url"]
        token = url.rsplit("/", 1)[1]
        hidden = release_create(actor=admin, uploaded_file=SimpleUploadedFile("b.exe", b"beta"),
                                version="4.0-beta")
        _payload, rest = token.split(":", 1)
        other_release = signing.b64_encode(
            b'{"u":%d,"r":%d}' % (member.pk, hidden.pk)).decode()
        stranger = UserFactory.create(role=roles["user"])
        other_user = signing.b64_encode(b'{"u":%d,"r":%d}' % (stranger.pk, release.pk)).decode()
        for bad in (f"{other_release}:{rest}", f"{other_user}:{rest}",
                    signing.dumps({"u": member.pk, "r": hidden.pk}, salt="other-salt"),
                    token[:-1] + ("A" if token[-1] != "A" else "B"), "x"):
            response, _ = _download(client, f"/api/loader/download/{bad}")
            assert_error(response, 403, "forbidden")
        response, _ = _download(client, "/api/loader/download/" + "a" * 300)
        assert_error(response, 422, "invalid_input")
        assert not LogEntry.objects.filter(action="loader.download").exists()
        # a correctly signed link to an unpublished release is still refused
        signed = signing.dumps({"u": member.pk, "r": hidden.pk}, salt=LINK_SALT)
        response, _ = _download(client, f"/api/loader/download/{signed}")
        assert_error(response, 404, "not_found")

    def test_ban_or_lapse_since_the_link_refuses(self, api_as, client, member, moderator,
                                                 product, release):
        subscription = _subscribe(member, product)
        url = _link(api_as, member)["url"]
        Subscription.objects.filter(pk=subscription.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1))
        response, _ = _download(client, url)
        assert_error(response, 403, "forbidden")
        Subscription.objects.filter(pk=subscription.pk).update(
            expires_at=timezone.now() + timedelta(days=1))
        assert _download(client, url)[0].status_code == 200
        ban_create(actor=moderator, user=member, reason="shared the loader")
        response, _ = _download(client, url)
        assert_error(response, 403, "user_banned")


@pytest.mark.django_db
class TestHandedToNginx:
    """With LOADER_ACCEL_REDIRECT_PREFIX the app checks the link and nginx sends the bytes."""

    @pytest.fixture(autouse=True)
    def _accel(self, settings):
        settings.LOADER_ACCEL_REDIRECT_PREFIX = "/protected-loader"

    def test_answers_with_x_accel_redirect_and_no_body(self, api_as, client, member, product,
                                                       release, media):
        _subscribe(member, product)
        response = client.get(_link(api_as, member)["url"])
        assert response.status_code == 200
        assert not getattr(response, "streaming", False) and response.content == b""
        # The path under MEDIA_ROOT, which nginx's internal location aliases.
        assert response["X-Accel-Redirect"] == f"/protected-loader/{release.file.name}"
        assert (media / release.file.name).read_bytes() == CONTENT
        assert response["Content-Type"] == "application/octet-stream"
        disposition = response["Content-Disposition"]
        assert disposition == 'attachment; filename="zalypaspb-loader-3.2.1.exe"'
        assert "no-store" in response["Cache-Control"]
        # nginx drops the upstream's length and sends the file's own.
        assert response.get("Content-Length") in (None, "0")
        entry = LogEntry.objects.get(action="loader.download")
        assert entry.actor == member and entry.data["version"] == "3.2.1"

    def test_the_link_is_checked_as_before(self, api_as, client, member, moderator, product,
                                           release):
        _subscribe(member, product)
        url = _link(api_as, member)["url"]
        response = client.get(url + "x")
        assert_error(response, 403, "forbidden")
        assert "X-Accel-Redirect" not in response
        ban_create(actor=moderator, user=member, reason="shared the loader")
        response = client.get(url)
        assert_error(response, 403, "user_banned")
        assert "X-Accel-Redirect" not in response

    def test_a_missing_file_is_404_not_a_redirect(self, api_as, client, member, product,
                                                   release, media):
        _subscribe(member, product)
        url = _link(api_as, member)["url"]
        (media / release.file.name).unlink()
        response = client.get(url)
        assert_error(response, 404, "not_found")
        assert "X-Accel-Redirect" not in response
        assert LogEntry.objects.filter(action="loader.file_missing").exists()

    def test_unusual_characters_in_the_path_are_percent_encoded(self, api_as, client, member,
                                                               product, admin, media):
        created = release_create(actor=admin, uploaded_file=SimpleUploadedFile("s.exe", b"xy"),
                                 version="3.3+build.1")
        release_publish(actor=admin, release_id=created.pk, published=True)
        _subscribe(member, product)
        response = client.get(_link(api_as, member)["url"])
        assert response.status_code == 200
        assert response["X-Accel-Redirect"] == (
            f"/protected-loader/{created.file.name.replace('+', '%2B')}")
