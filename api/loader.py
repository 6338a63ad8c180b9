"""The loader for members: latest release, a short-lived signed link, the file itself.

The file streams through Django, or, with LOADER_ACCEL_REDIRECT_PREFIX, the answer is an empty
body with X-Accel-Redirect and nginx sends the bytes from an `internal` location, so a 200 MB
download does not hold a worker.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import quote

from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.utils.http import content_disposition_header
from ninja import Router, Schema
from pydantic import StringConstraints

from api.auth import current_user, member_auth
from api.errors import ERRORS
from api.net import client_ip
from core.models import LoaderRelease
from core.selectors.releases import release_latest_published
from core.services.releases import release_download_link, release_for_token

# The signed token of a download link, as a path segment.
LinkToken = Annotated[str, StringConstraints(min_length=1, max_length=256)]

router = Router(tags=["loader"])


class ReleaseOut(Schema):
    version: str
    sha256: str
    size: int
    changelog: str
    created_at: datetime


class DownloadLinkOut(Schema):
    url: str
    expires_at: datetime


_FILE_RESPONSE = {
    "responses": {
        200: {
            "description": "The loader file, as an attachment; with "
                           "LOADER_ACCEL_REDIRECT_PREFIX set, an empty body and "
                           "X-Accel-Redirect, and nginx sends the file",
            "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                "format": "binary"}}},
        }
    }
}


@router.get("/latest", auth=member_auth, response={200: ReleaseOut, **ERRORS},
            operation_id="loader_latest", summary="The latest published loader release")
def latest(request: HttpRequest) -> LoaderRelease:
    return release_latest_published()


@router.post("/download-link", auth=member_auth, response={200: DownloadLinkOut, **ERRORS},
             operation_id="loader_download_link",
             summary="A short-lived signed link to download the latest loader "
                     "(active subscription required)")
def download_link(request: HttpRequest) -> DownloadLinkOut:
    link = release_download_link(user=current_user(request))
    return DownloadLinkOut(url=reverse("api:loader_download", kwargs={"token": link.token}),
                           expires_at=link.expires_at)


# No session: the signature in the link is the authorisation (a loader or a download manager
# may fetch it), and the holder is re-checked at download time.
@router.get("/download/{token}", auth=None, response=ERRORS, url_name="loader_download",
            operation_id="loader_download", summary="Download the loader through a signed link",
            openapi_extra=_FILE_RESPONSE)
def download(request: HttpRequest, token: LinkToken) -> HttpResponseBase:
    prefix = settings.LOADER_ACCEL_REDIRECT_PREFIX
    grant = release_for_token(token=token, ip=client_ip(request), open_file=not prefix)
    response: HttpResponseBase
    if grant.file is None:
        response = HttpResponse(b"", content_type="application/octet-stream")
        # nginx unescapes the URI before mapping it to the file under its alias.
        response["X-Accel-Redirect"] = f"{prefix}/{quote(grant.stored_name, safe='/')}"
        response["Content-Disposition"] = content_disposition_header(
            as_attachment=True, filename=grant.filename) or ""
    else:
        response = FileResponse(grant.file, as_attachment=True, filename=grant.filename,
                                content_type="application/octet-stream")
    response["Cache-Control"] = "private, no-store"
    return response
