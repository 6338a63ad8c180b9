"""The member's own pages. Reads come from selectors in a fixed number of queries; every
action on them is a call to the API made by the page's script."""

from __future__ import annotations

from django.conf import settings
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone

from api.pages.base import member_page, render_page
from core.discord.rest import discord_enabled
from core.errors import NotFound
from core.models import User
from core.selectors.invites import invite_quota_status, invites_of_user
from core.selectors.releases import release_latest_published
from core.selectors.stats import user_stats
from core.selectors.subscriptions import subscriptions_of_user
from core.services.licensing import hwid_self_reset_cooldown

INVITES_PER_PAGE = 20


def _member(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # member_page let only members through
    return user


@member_page
def dashboard(request: HttpRequest) -> HttpResponse:
    user = _member(request)
    stats = user_stats(user_id=user.pk)
    return render_page(request, "pages/dashboard.html", "dashboard", {"stats": stats})


@member_page
def invites(request: HttpRequest) -> HttpResponse:
    user = _member(request)
    paginator = Paginator(invites_of_user(user=user).order_by("-created_at", "-id"),
                          INVITES_PER_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    register_url = request.build_absolute_uri(reverse("register"))
    return render_page(request, "pages/invites.html", "invites", {
        "quota": invite_quota_status(user=user),
        "invites_page": page,
        "register_url": register_url,
        "can_invite": user.can_invite,
    })


@member_page
def redeem(request: HttpRequest) -> HttpResponse:
    return render_page(request, "pages/redeem.html", "redeem")


@member_page
def discord(request: HttpRequest) -> HttpResponse:
    return render_page(request, "pages/discord.html", "discord", {
        "discord_on": discord_enabled(),
        "code_minutes": settings.ZSPB.link_code_ttl_minutes,
    })


@member_page
def download(request: HttpRequest) -> HttpResponse:
    user = _member(request)
    try:
        release = release_latest_published()
    except NotFound:
        release = None
    active = subscriptions_of_user(user=user).active().exists()
    return render_page(request, "pages/download.html", "download",
                       {"release": release, "active": active})


@member_page
def machine(request: HttpRequest) -> HttpResponse:
    user = _member(request)
    cooldown = hwid_self_reset_cooldown()
    now = timezone.now()
    rows = [
        {"subscription": sub, "bound": bool(sub.hwid_digest),
         "available_at": sub.hwid_self_reset_available_at(cooldown, now=now) if cooldown
         else None}
        for sub in subscriptions_of_user(user=user)
    ]
    return render_page(request, "pages/machine.html", "machine", {
        "rows": rows, "cooldown_days": cooldown.days if cooldown else 0,
    })


@member_page
def account(request: HttpRequest) -> HttpResponse:
    return render_page(request, "pages/account.html", "account")
