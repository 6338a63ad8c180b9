"""django-axes' answer to a locked-out login (AXES_LOCKOUT_CALLABLE), per kind of caller."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _

from api.pages.auth import locked_login_page


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
        response = locked_login_page(request, message)
    else:
        response = HttpResponse(f"<h1>{message}</h1>", status=429)
    response["Retry-After"] = str(retry_after)
    return response
