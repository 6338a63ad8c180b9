"""Reads of loader releases."""

from __future__ import annotations

from django.utils.translation import gettext as _

from core.errors import NotFound
from core.models import LoaderRelease


def release_latest_published() -> LoaderRelease:
    """The newest published release; one query whatever the number of releases."""
    release = (
        LoaderRelease.objects.filter(published=True).order_by("-created_at", "-id").first()
    )
    if release is None:
        raise NotFound(_("No loader release has been published yet."))
    return release
