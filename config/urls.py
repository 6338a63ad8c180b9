from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from api.api import api
from api.pages import auth, member

if settings.BENCH_BASELINE:
    # Before api.urls is built below: a router added later would have no URL.
    from api import bench

    bench.mount(api)

urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("login", auth.login_page, name="login"),
    path("logout", auth.logout_page, name="logout"),
    path("register", auth.register, name="register"),
    path("invites", member.invites, name="invites"),
    path("redeem", member.redeem, name="redeem"),
    path("discord", member.discord, name="discord"),
    path("download", member.download, name="download"),
    path("machine", member.machine, name="machine"),
    path("account", member.account, name="account"),
    path("", member.dashboard, name="home"),
]

# A database failure outside a view answers 503, not 500 (api.errors.server_error).
handler500 = "api.errors.server_error"
