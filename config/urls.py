from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from api import pages
from api.api import api

urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("register", pages.register, name="register"),
    path("", pages.home, name="home"),
]
