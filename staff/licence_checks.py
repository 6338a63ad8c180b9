"""Successful licence checks per subscription and day, read-only (refusals are in the user
journal). Rows are written by core.services.licence_counts only: nobody adds, changes or
deletes them here."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from unfold.contrib.filters.admin import RangeDateFilter
from unfold.decorators import display

from core.models import LicenseCheckDay
from staff.base import StaffModelAdmin
from staff.changelist import ScaledChangeListMixin, user_filter


@admin.register(LicenseCheckDay)
class LicenseCheckDayAdmin(ScaledChangeListMixin, StaffModelAdmin):
    view_capability = "view_any_stats"
    list_display = ["day", "member", "product", "count", "last_checked_at", "subscription_link"]
    list_filter = [("day", RangeDateFilter), "subscription__product",
                   user_filter("subscription__user", str(_("user (id or username)")))]
    list_filter_submit = True
    list_select_related = ["subscription__user", "subscription__product"]
    ordering = ["-day", "-count"]
    fields = ["day", "subscription", "count", "last_checked_at"]
    readonly_fields = fields

    @display(description=_("member"), ordering="subscription__user__username")
    def member(self, obj: LicenseCheckDay) -> str:
        return obj.subscription.user.get_username()

    @display(description=_("product"))
    def product(self, obj: LicenseCheckDay) -> str:
        return obj.subscription.product.slug

    @display(description=_("subscription"))
    def subscription_link(self, obj: LicenseCheckDay) -> SafeString:
        return format_html('<a href="{}" class="text-primary-600 dark:text-primary-500">#{}</a>',
                           reverse(f"{self.admin_site.name}:core_subscription_change",
                                   args=[obj.subscription_id]), obj.subscription_id)
