"""Invites: the list (codes hidden), revoking through invite_revoke."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin import ShowFacets
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from core.models import Invite
from core.services.invites import invite_revoke
from staff.actions import actor_of, capped, run_each
from staff.base import StaffModelAdmin, staff_can


@admin.register(Invite)
class InviteAdmin(StaffModelAdmin):
    view_capability = "view_any_stats"
    list_display = ["id", "created_by", "status", "created_at", "expires_at", "used_by"]
    list_filter = ["status"]
    list_select_related = ["created_by", "used_by"]
    search_fields = ["created_by__username", "used_by__username"]
    ordering = ["-created_at"]
    show_full_result_count = False
    show_facets = ShowFacets.NEVER
    # The code stays hidden: a staff member has no reason to hand out someone's invite.
    fields = ["created_by", "status", "created_at", "expires_at", "used_by", "used_at",
              "revoked_at"]
    readonly_fields = fields
    actions = ["revoke"]

    def has_manage_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return staff_can(request, "manage_users")

    @admin.action(description=_("Revoke selected invites"), permissions=["manage"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[Invite]) -> None:
        invites = capped(request, queryset)
        if invites is not None:
            actor = actor_of(request)
            run_each(request, invites, lambda i: invite_revoke(actor=actor, invite_id=i.pk),
                     done=_("Revoked %(count)d invites."))
