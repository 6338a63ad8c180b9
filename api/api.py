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
from api.errors import JsonParser, declare_body_errors, install_error_handlers


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
    parser=JsonParser(),
)
install_error_handlers(api)
ROUTERS = {
    "/auth": session.router,
    "/invites": invites.router,
    "/keys": keys.router,
    "/subscriptions": subscriptions.router,
    "/stats": stats.router,
    "/discord": discord.router,
    "/loader": loader.router,
    "/license": license.router,
    "/bot": bot.router,
    "/": health.router,
}
declare_body_errors(ROUTERS.values())
for prefix, router in ROUTERS.items():
    api.add_router(prefix, router)
