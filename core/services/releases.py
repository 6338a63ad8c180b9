"""Loader releases: upload and publish (staff), short-lived signed download links (members)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePath
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.files import File
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied, UserBanned
from core.models import LoaderRelease, Subscription, User
from core.selectors.releases import release_latest_published
from core.services.access import ensure_active, ensure_capability
from core.services.logs import Category, log_event

VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._+-]{0,31}$")
CHANGELOG_MAX = 20_000
_SUFFIX_RE = re.compile(r"^\.[A-Za-z0-9]{1,8}$")
# A salt of its own, so no other signed value of the site can pass for a download link.
LINK_SALT = "zspb.loader.download"


@dataclass(frozen=True)
class DownloadLink:
    token: str
    expires_at: datetime
    release: LoaderRelease


@dataclass(frozen=True)
class DownloadGrant:
    release: LoaderRelease
    # The open file, or None when the caller asked only for its path (nginx sends the bytes).
    file: File[bytes] | None
    filename: str
    # The file's path relative to the storage root (MEDIA_ROOT), with forward slashes.
    stored_name: str


def _stored_name(version: str, original: str | None) -> str:
    # The uploader's file name is not trusted; only a plain extension survives.
    suffix = PurePath(original or "").suffix
    return f"zalypaspb-loader-{version}{suffix if _SUFFIX_RE.match(suffix) else ''}"


def _digest_file(uploaded_file: File[Any]) -> tuple[str, int]:
    sha = hashlib.sha256()
    size = 0
    for chunk in uploaded_file.chunks():  # bounded memory whatever the file size
        data = chunk.encode() if isinstance(chunk, str) else chunk
        sha.update(data)
        size += len(data)
    return sha.hexdigest(), size


def release_create(
    *, actor: User, uploaded_file: File[Any], version: str, changelog: str = ""
) -> LoaderRelease:
    """Store a new, unpublished release with its sha256 and size computed from the bytes."""
    ensure_capability(actor, "manage_loader")
    version = version.strip()
    if not VERSION_RE.match(version):
        raise InvalidInput(_("A version is 1-32 letters, digits, dots, dashes, pluses or "
                           "underscores, starting with a letter or digit."),
                           fields={"version": "invalid"})
    if len(changelog) > CHANGELOG_MAX:
        raise InvalidInput(_("The changelog is limited to %(max)s characters.")
                           % {"max": CHANGELOG_MAX},
                           fields={"changelog": len(changelog)})
    if "\x00" in changelog:  # PostgreSQL text cannot hold NUL
        raise InvalidInput(_("The changelog contains a NUL character."),
                           fields={"changelog": "nul"})
    if LoaderRelease.objects.filter(version=version).exists():
        raise Conflict(_("Version %(version)s already exists.") % {"version": version},
                       version=version)
    sha256, size = _digest_file(uploaded_file)
    if size == 0:
        raise InvalidInput(_("The file is empty."), fields={"file": "empty"})

    release = LoaderRelease(version=version, sha256=sha256, size=size, changelog=changelog,
                            uploaded_by=actor)
    release.file.save(_stored_name(version, uploaded_file.name), uploaded_file, save=False)
    try:
        with transaction.atomic():
            release.save()
            log_event(category=Category.MODERATION, action="loader.release_create", actor=actor,
                      data={"release_id": release.pk, "version": version, "sha256": sha256,
                            "size": size})
    except IntegrityError:
        # Lost a race for the same version: do not leave an orphan file behind.
        release.file.delete(save=False)
        raise Conflict(_("Version %(version)s already exists.") % {"version": version},
                       version=version) from None
    return release


def release_publish(*, actor: User, release_id: int, published: bool) -> LoaderRelease:
    """Publish or withdraw a release. Withdrawing also voids download links already issued."""
    ensure_capability(actor, "manage_loader")
    with transaction.atomic():
        release = LoaderRelease.objects.select_for_update().filter(pk=release_id).first()
        if release is None:
            raise NotFound(_("Release not found."))
        if release.published == published:
            return release
        release.published = published
        release.save(update_fields=["published"])
        log_event(category=Category.MODERATION,
                  action="loader.release_publish" if published else "loader.release_withdraw",
                  actor=actor, data={"release_id": release.pk, "version": release.version})
    return release


def _has_active_subscription(user_id: int, now: datetime) -> bool:
    return Subscription.objects.active(now).filter(user_id=user_id).exists()


def release_download_link(*, user: User) -> DownloadLink:
    """A link to the latest release, signed for this user, valid LOADER_LINK_TTL_SECONDS."""
    ensure_active(user)
    now = timezone.now()
    if not _has_active_subscription(user.pk, now):
        raise PermissionDenied(_("An active subscription is needed to download the loader."),
                               reason="no_active_subscription")
    release = release_latest_published()
    token = signing.dumps({"u": user.pk, "r": release.pk}, salt=LINK_SALT)
    return DownloadLink(token=token, release=release,
                        expires_at=now + timedelta(seconds=settings.LOADER_LINK_TTL_SECONDS))


def _token_ids(token: str) -> tuple[int, int]:
    try:
        data = signing.loads(token, salt=LINK_SALT, max_age=settings.LOADER_LINK_TTL_SECONDS)
    except signing.SignatureExpired:
        raise NotFound(_("This download link has expired; ask for a new one."),
                       reason="expired") from None
    except signing.BadSignature:
        raise PermissionDenied(_("This download link is not valid."),
                               reason="bad_signature") from None
    user_id, release_id = (data.get("u"), data.get("r")) if isinstance(data, dict) else (None, None)
    if type(user_id) is not int or type(release_id) is not int:
        raise PermissionDenied(_("This download link is not valid."), reason="bad_signature")
    return user_id, release_id


def release_for_token(*, token: str, ip: str | None = None,
                      open_file: bool = True) -> DownloadGrant:
    """Open the release a signed link points to, re-checking its holder at download time.

    The link outlives the request that issued it, so a ban, an expired subscription or a
    withdrawn release since then refuses the download. With open_file=False the file is only
    checked to exist (someone else, nginx, will read it).
    """
    user_id, release_id = _token_ids(token)
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        raise PermissionDenied(_("This download link is not valid."), reason="unknown_user")
    if not user.is_active:
        raise UserBanned()
    if not _has_active_subscription(user.pk, timezone.now()):
        raise PermissionDenied(_("An active subscription is needed to download the loader."),
                               reason="no_active_subscription")
    release = LoaderRelease.objects.filter(pk=release_id, published=True).first()
    if release is None:
        raise NotFound(_("This release is no longer available."))
    handle: File[bytes] | None = None
    try:
        if open_file:
            handle = release.file.storage.open(release.file.name, "rb")
        elif not release.file.storage.exists(release.file.name):
            raise FileNotFoundError(release.file.name)
    except FileNotFoundError:
        log_event(category=Category.ERROR, action="loader.file_missing",
                  data={"release_id": release.pk, "version": release.version})
        raise NotFound(_("This release is no longer available.")) from None
    log_event(category=Category.USER, action="loader.download", actor=user,
              data={"release_id": release.pk, "version": release.version}, ip=ip)
    return DownloadGrant(release=release, file=handle,
                         filename=_stored_name(release.version, release.file.name),
                         stored_name=release.file.name)
