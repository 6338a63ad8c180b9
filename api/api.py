"""The one NinjaAPI, mounted at /api/: a router per resource."""

from __future__ import annotations

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from ninja import NinjaAPI

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

api = NinjaAPI(
    title="ZalypaSPB API",
    version="1",
    description="Member pages (session + CSRF), the Discord bot (bearer token) and the loader.",
    urls_namespace="api",
    openapi_url="/openapi.json",
    docs_url="/docs",
    # In production only staff may browse the docs; the schema itself stays public.
    docs_decorator=None if settings.DEBUG else staff_member_required,
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
