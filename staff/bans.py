"""Bans: the list with their state, and lifting them through ban_lift.

A ban is created only through the member actions (ban_create) and never deleted: the row is
the record of it, and deleting an open one would leave the member deactivated with no ban.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin import ShowFacets
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from unfold.decorators import display

from core.models import Ban
from core.services.bans import ban_lift
from staff.actions import actor_of, capped, run_each
from staff.base import StaffModelAdmin, staff_can


class BanStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("active", _("Active")), ("expired", _("Expired or lifted"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Ban]) -> QuerySet[Ban]:
        active = Ban.objects.active().values("pk")
        if self.value() == "active":
            return queryset.filter(pk__in=active)
        if self.value() == "expired":
            return queryset.exclude(pk__in=active)
        return queryset


@admin.register(Ban)
class BanAdmin(StaffModelAdmin):
    view_capability = "ban_users"
    list_display = ["user", "reason", "author", "created_at", "ends_at", "state"]
    list_select_related = ["user", "author", "lifted_by"]
    list_filter = [BanStateFilter]
    search_fields = ["user__username", "reason"]
    ordering = ["-created_at"]
    show_full_result_count = False
    show_facets = ShowFacets.NEVER
    readonly_fields = ["user", "reason", "author", "created_at", "ends_at", "lifted_at",
                       "lifted_by"]
    actions = ["lift"]

    def has_ban_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return staff_can(request, "ban_users")

    @display(description=_("State"), label={_("Active"): "danger", _("Ended"): "info"})
    def state(self, obj: Ban) -> Any:
        return _("Active") if obj.is_active else _("Ended")

    @admin.action(description=_("Lift selected bans"), permissions=["ban"])
    def lift(self, request: HttpRequest, queryset: QuerySet[Ban]) -> None:
        bans = capped(request, queryset.filter(lifted_at__isnull=True)
                      .select_related("user__role"))
        if bans is not None:
            actor = actor_of(request)
            run_each(request, bans, lambda b: ban_lift(actor=actor, user=b.user),
                     done=_("Lifted %(count)d bans."))
