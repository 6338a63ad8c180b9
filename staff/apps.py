from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig
from django.utils.translation import gettext_lazy as _


class StaffConfig(AppConfig):
    name = "staff"
    verbose_name = _("Staff")


class StaffAdminConfig(AdminConfig):
    """django.contrib.admin with the two-factor staff site as `admin.site`.

    unfold's default app config would replace admin.site with a plain UnfoldAdminSite, so
    settings use unfold's BasicAppConfig and this config names the site instead.
    """

    default_site = "staff.site.StaffAdminSite"
