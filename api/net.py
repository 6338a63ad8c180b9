from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _


def client_ip(request: HttpRequest) -> str:
    """The client's address as seen by the outermost trusted proxy.

    With NUM_PROXIES proxies in front, the right-most NUM_PROXIES entries of X-Forwarded-For
    were written by them; anything further left came from the client and is ignored, so a
    spoofed header cannot change the address.
    """
    remote = str(request.META.get("REMOTE_ADDR") or "0.0.0.0")  # noqa: S104 (a value, not a bind)
    proxies = settings.NUM_PROXIES
    if proxies <= 0:
        return remote
    forwarded = [
        part.strip()
        for part in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")
        if part.strip()
    ]
    if len(forwarded) < proxies:
        return remote
    return forwarded[-proxies]


def lockout_response(
    request: HttpRequest, original_response: Any, credentials: Any
) -> HttpResponse:
    """django-axes' answer to a locked-out login, in the API's error shape under /api/."""
    retry_after = int(settings.AXES_COOLOFF_TIME.total_seconds())
    message = _("Too many failed logins from here; try again later.")
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(
            {"code": "login_locked", "message": message, "details": {"retry_after": retry_after}},
            status=429,
        )
    elif request.path == "/login":
        # The member login page again, with the reason above the form.
        from api.pages.auth import locked_login_page

        response = locked_login_page(request, message)
    else:
        response = HttpResponse(f"<h1>{message}</h1>", status=429)
    response["Retry-After"] = str(retry_after)
    return response
