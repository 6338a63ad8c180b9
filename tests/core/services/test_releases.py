from __future__ import annotations

import hashlib
import io
import os
import time
from datetime import timedelta

import pytest
from django.core import signing
from django.core.files import File
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied, UserBanned
from core.models import LoaderRelease, LogEntry, Subscription
from core.selectors.releases import release_latest_published
from core.services.bans import ban_create
from core.services.releases import (
    LINK_SALT,
    release_create,
    release_download_link,
    release_for_token,
    release_publish,
)
from tests.factories import UserFactory

CHUNK = 64 * 1024


class StreamOnlyBytes(io.BytesIO):
    """Refuses to be read whole: proves hashing and storing go chunk by chunk."""

    def read(self, size=-1):
        assert size is not None and 0 < size <= CHUNK, "the upload was read whole"
        return super().read(size)


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def _upload(version="1.0.0", content=b"MZ loader bytes", name="loader.exe", actor=None,
            changelog=""):
    return release_create(actor=actor, uploaded_file=SimpleUploadedFile(name, content),
                          version=version, changelog=changelog)


def _subscribe(user, product, days=30):
    return Subscription.objects.create(user=user, product=product,
                                       expires_at=timezone.now() + timedelta(days=days))


@pytest.mark.django_db
class TestReleaseCreate:
    def test_sha256_and_size_are_computed_from_the_bytes(self, admin, media):
        content = os.urandom(5 * CHUNK + 123)
        upload = File(StreamOnlyBytes(content), name="Loader Setup.exe")
        release = release_create(actor=admin, uploaded_file=upload, version="2.1.0",
                                 changelog="Faster start-up")
        release.refresh_from_db()
        assert release.sha256 == hashlib.sha256(content).hexdigest()
        assert release.size == len(content)
        assert not release.published
        assert release.uploaded_by == admin
        stored = media / release.file.name
        assert stored.read_bytes() == content
        assert stored.parent == media / "loader"
        assert release.file.name.endswith(".exe") and "2.1.0" in release.file.name
        entry = LogEntry.objects.get(action="loader.release_create")
        assert entry.category == "moderation" and entry.actor == admin
        assert entry.data["sha256"] == release.sha256

    def test_needs_manage_loader(self, moderator, member, media):
        for actor in (moderator, member):
            with pytest.raises(PermissionDenied):
                _upload(actor=actor)
        assert not LoaderRelease.objects.exists()
        assert not list(media.rglob("*.exe"))

    def test_banned_admin_refused(self, admin, moderator, roles, media):
        owner = UserFactory.create(role=roles["admin"], is_superuser=True)
        ban_create(actor=owner, user=admin, reason="compromised")
        admin.refresh_from_db()
        with pytest.raises(UserBanned):
            _upload(actor=admin)

    def test_duplicate_version_is_a_conflict(self, admin, media):
        _upload(actor=admin, version="1.0.0")
        with pytest.raises(Conflict):
            _upload(actor=admin, version="1.0.0", content=b"other")
        assert LoaderRelease.objects.count() == 1
        assert len(list((media / "loader").iterdir())) == 1

    @pytest.mark.parametrize("version", ["", " ", "-1", "1.0/../../x", "v" * 33, "1 0"])
    def test_bad_versions(self, admin, media, version):
        with pytest.raises(InvalidInput):
            _upload(actor=admin, version=version)

    def test_empty_file_and_long_changelog(self, admin, media):
        with pytest.raises(InvalidInput):
            _upload(actor=admin, content=b"")
        with pytest.raises(InvalidInput):
            _upload(actor=admin, changelog="x" * 20_001)
        with pytest.raises(InvalidInput):
            _upload(actor=admin, changelog="fixed \x00 crash")
        assert not LoaderRelease.objects.exists()

    def test_untrusted_file_name_is_not_used(self, admin, media):
        release = _upload(actor=admin, name="../../etc/passwd;.sh x", version="1.0")
        assert release.file.name.startswith("loader/zalypaspb-loader-1.0")
        assert "passwd" not in release.file.name


@pytest.mark.django_db
class TestPublish:
    def test_latest_is_the_newest_published(self, admin, media):
        old = _upload(actor=admin, version="1.0")
        new = _upload(actor=admin, version="1.1")
        LoaderRelease.objects.filter(pk=old.pk).update(
            created_at=timezone.now() - timedelta(days=1))
        with pytest.raises(NotFound):
            release_latest_published()
        release_publish(actor=admin, release_id=old.pk, published=True)
        assert release_latest_published() == old
        release_publish(actor=admin, release_id=new.pk, published=True)
        assert release_latest_published() == new
        release_publish(actor=admin, release_id=new.pk, published=False)
        assert release_latest_published() == old
        actions = list(LogEntry.objects.filter(category="moderation")
                       .values_list("action", flat=True))
        assert actions.count("loader.release_publish") == 2
        assert actions.count("loader.release_withdraw") == 1

    def test_needs_manage_loader_and_existing_release(self, admin, moderator, media):
        release = _upload(actor=admin)
        with pytest.raises(PermissionDenied):
            release_publish(actor=moderator, release_id=release.pk, published=True)
        with pytest.raises(NotFound):
            release_publish(actor=admin, release_id=release.pk + 100, published=True)


@pytest.fixture
def published(admin, media):
    release = _upload(actor=admin, content=b"the loader" * 1000)
    return release_publish(actor=admin, release_id=release.pk, published=True)


@pytest.mark.django_db
class TestDownloadLink:
    def test_needs_an_active_subscription(self, member, product, published):
        with pytest.raises(PermissionDenied) as caught:
            release_download_link(user=member)
        assert caught.value.details["reason"] == "no_active_subscription"
        _subscribe(member, product, days=-1)
        with pytest.raises(PermissionDenied):
            release_download_link(user=member)

    def test_link_opens_the_file_and_journals(self, member, product, published, settings):
        _subscribe(member, product)
        before = timezone.now()
        link = release_download_link(user=member)
        ttl = timedelta(seconds=settings.LOADER_LINK_TTL_SECONDS)
        assert before + ttl <= link.expires_at <= timezone.now() + ttl
        assert link.release == published
        grant = release_for_token(token=link.token, ip="203.0.113.9")
        with grant.file:
            assert grant.file.read() == b"the loader" * 1000
        entry = LogEntry.objects.get(action="loader.download")
        assert entry.category == "user" and entry.actor == member and entry.ip == "203.0.113.9"

    def test_no_release_published(self, member, product, media):
        _subscribe(member, product)
        with pytest.raises(NotFound):
            release_download_link(user=member)

    def test_banned_user_gets_no_link(self, member, moderator, product, published):
        _subscribe(member, product)
        ban_create(actor=moderator, user=member, reason="x")
        member.refresh_from_db()
        with pytest.raises(UserBanned):
            release_download_link(user=member)

    def test_expired_link_refused(self, member, product, published, settings, monkeypatch):
        _subscribe(member, product)
        token = release_download_link(user=member).token
        later = time.time() + settings.LOADER_LINK_TTL_SECONDS + 5
        monkeypatch.setattr(time, "time", lambda: later)  # signing reads time.time()
        with pytest.raises(NotFound) as caught:
            release_for_token(token=token)
        assert caught.value.details["reason"] == "expired"

    def test_forged_links_refused(self, member, roles, product, published):
        _subscribe(member, product)
        token = release_download_link(user=member).token
        other = UserFactory.create(role=roles["user"])
        _subscribe(other, product)
        _payload, rest = token.split(":", 1)
        forged = [
            signing.dumps({"u": other.pk, "r": published.pk}, salt="another.salt"),
            signing.dumps({"u": other.pk, "r": published.pk}, key="not the secret",
                          salt=LINK_SALT),
            signing.b64_encode(b'{"u":%d,"r":%d}' % (other.pk, published.pk)).decode()
            + ":" + rest,
            token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
            "garbage",
            signing.dumps({"u": True, "r": published.pk}, salt=LINK_SALT),
        ]
        for bad in forged:
            with pytest.raises(PermissionDenied):
                release_for_token(token=bad)
        assert not LogEntry.objects.filter(action="loader.download").exists()

    def test_state_rechecked_at_download(self, member, moderator, admin, product, published):
        subscription = _subscribe(member, product)
        token = release_download_link(user=member).token
        # subscription lapsed since the link was issued
        Subscription.objects.filter(pk=subscription.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1))
        with pytest.raises(PermissionDenied):
            release_for_token(token=token)
        # subscription back, release withdrawn
        Subscription.objects.filter(pk=subscription.pk).update(
            expires_at=timezone.now() + timedelta(days=1))
        release_publish(actor=admin, release_id=published.pk, published=False)
        with pytest.raises(NotFound):
            release_for_token(token=token)
        release_publish(actor=admin, release_id=published.pk, published=True)
        # banned since
        ban_create(actor=moderator, user=member, reason="x")
        with pytest.raises(UserBanned):
            release_for_token(token=token)

    def test_missing_file_is_a_404_and_an_error_journal(self, member, product, published,
                                                        media):
        _subscribe(member, product)
        token = release_download_link(user=member).token
        (media / published.file.name).unlink()
        with pytest.raises(NotFound):
            release_for_token(token=token)
        assert LogEntry.objects.filter(action="loader.file_missing", category="error").exists()
