"""The one NinjaAPI, mounted at /api/: a router per resource."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial, wraps
from typing import Any

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.openapi.views import openapi_json

from api import (
    bot,
    discord,
    health,
    invites,
    keys,
    license,
    loader,
    session,
    stats,
    subscriptions,
)
from api.errors import install_error_handlers


def _docs_guard(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """In production only staff may browse the docs; the schema itself stays public.

    Decided per request, not at import, so DEBUG changes (and tests) are honoured.
    """
    if isinstance(view, partial) and view.func is openapi_json:
        return view
    staff_view = staff_member_required(view)

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if settings.DEBUG:
            return view(request, *args, **kwargs)
        return staff_view(request, *args, **kwargs)

    return guarded


api = NinjaAPI(
    title="ZalypaSPB API",
    version="1",
    description="Member pages (session + CSRF), the Discord bot (bearer token) and the loader.",
    urls_namespace="api",
    openapi_url="/openapi.json",
    docs_url="/docs",
    docs_decorator=_docs_guard,
)
install_error_handlers(api)
api.add_router("/auth", session.router)
api.add_router("/invites", invites.router)
api.add_router("/keys", keys.router)
api.add_router("/subscriptions", subscriptions.router)
api.add_router("/stats", stats.router)
api.add_router("/discord", discord.router)
api.add_router("/loader", loader.router)
api.add_router("/license", license.router)
api.add_router("/bot", bot.router)
api.add_router("/", health.router)
