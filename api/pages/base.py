"""What every member page shares: the login requirement and the page context."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_safe

from core.models import User

PageView = Callable[..., HttpResponse]


def member_page(view: PageView) -> PageView:
    """GET and HEAD only, members only (a banned or logged-out visitor goes to the login)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not (request.user.is_authenticated and isinstance(request.user, User)):
            return redirect(f"{reverse('login')}?{urlencode({'next': request.get_full_path()})}")
        return view(request, *args, **kwargs)

    return require_safe(wrapped)


def render_page(request: HttpRequest, template: str, page: str,
                context: dict[str, Any] | None = None) -> HttpResponse:
    """Render a member page; `page` names the navigation entry to highlight."""
    response = render(request, template, {"page": page, **(context or {})})
    # Member data: never stored by shared caches or shown again from the back button.
    response["Cache-Control"] = "private, no-store"
    return response


def server_now(request: HttpRequest) -> dict[str, Any]:
    """Context processor: the server's clock, which every countdown counts against."""
    return {"server_now": timezone.now()}
