"""Invites: the list (codes hidden), revoking through invite_revoke, and a staff member's own
invite created through invite_create within their monthly quota (its link shown once)."""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import ShowFacets
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from unfold.decorators import action, display

from core.errors import ZspbError
from core.models import Invite
from core.models.invites import InviteQuerySet
from core.selectors.invites import invite_quota_status
from core.services.invites import invite_create, invite_revoke
from staff.actions import ConfirmForm, action_page, actor_of, applied, capped, run_each
from staff.base import StaffModelAdmin, staff_can


def invite_link(invite: Invite) -> str:
    """The link a new member registers with, as `make run` prints it."""
    return f"{settings.SITE_URL.rstrip('/')}{reverse('register')}?invite={invite.code}"


STATE_LABELS = {"active": pgettext_lazy("invite", "Active"),
                "expired": pgettext_lazy("invite", "Expired"),
                "used": pgettext_lazy("invite", "Used"),
                "revoked": pgettext_lazy("invite", "Revoked")}


class InviteStateFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("usable", STATE_LABELS["active"]), ("expired", STATE_LABELS["expired"]),
                ("used", STATE_LABELS["used"]), ("revoked", STATE_LABELS["revoked"])]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Invite]) -> QuerySet[Invite]:
        rows = cast(InviteQuerySet, queryset)  # the admin's queryset is the model's
        value = self.value()
        if value == "usable":
            return rows.usable()
        if value == "expired":
            return rows.expired()
        if value in (Invite.Status.USED, Invite.Status.REVOKED):
            return queryset.filter(status=value)
        return queryset


@admin.register(Invite)
class InviteAdmin(StaffModelAdmin):
    view_capability = "view_any_stats"
    list_display = ["id", "created_by", "state", "created_at", "expires_at", "used_by"]
    list_filter = [InviteStateFilter]
    list_select_related = ["created_by", "used_by"]
    search_fields = ["created_by__username", "used_by__username"]
    ordering = ["-created_at"]
    show_full_result_count = False
    show_facets = ShowFacets.NEVER
    # The code stays hidden: a staff member has no reason to hand out someone's invite.
    fields = ["created_by", "state_text", "created_at", "expires_at", "used_by", "used_at",
              "revoked_at"]
    readonly_fields = fields
    actions = ["revoke"]
    actions_list = ["create_invite"]

    def has_manage_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return staff_can(request, "manage_users")

    @display(description=_("status"), label={"active": "success", "expired": "warning",
                                             "used": "info", "revoked": "danger"})
    def state(self, obj: Invite) -> tuple[str, Any]:
        status = obj.effective_status
        return status, STATE_LABELS.get(status, status)

    @display(description=_("status"))
    def state_text(self, obj: Invite) -> Any:
        # The change page shows read-only fields as text: the label alone, not the
        # (value, label) pair the list's badge takes.
        return STATE_LABELS.get(obj.effective_status, obj.effective_status)

    def has_create_invite_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Any staff member invites within their own role's quota, as on the member pages.
        return staff_can(request, None)

    @action(description=_("Create invite"), url_path="create", icon="add",
            permissions=["create_invite"])
    def create_invite(self, request: HttpRequest) -> HttpResponse:
        changelist = reverse(f"{self.admin_site.name}:core_invite_changelist")
        actor = actor_of(request)
        if applied(request):
            try:
                invite = invite_create(creator=actor)
            except ZspbError as exc:
                messages.error(request, exc.message)
            else:
                # The list hides codes; the creator's own link is shown here (and on /invites).
                messages.success(request, _("Invite created; send this link: %(link)s")
                                 % {"link": invite_link(invite)})
            return HttpResponseRedirect(changelist)
        quota = invite_quota_status(user=actor)
        intro = (_("Create a single-use invite of your own. Unlimited for your role.")
                 if quota.quota is None else
                 _("Create a single-use invite of your own: %(used)d of your %(quota)d "
                   "invites this month are used.") % {"used": quota.used, "quota": quota.quota})
        return action_page(request, self, title=_("Create invite"), intro=intro,
                           form=ConfirmForm(), post_url=request.path, submit=_("Create"))

    @admin.action(description=_("Revoke selected invites"), permissions=["manage"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[Invite]) -> None:
        invites = capped(request, queryset)
        if invites is not None:
            actor = actor_of(request)
            run_each(request, invites, lambda i: invite_revoke(actor=actor, invite_id=i.pk),
                     done=_("Revoked %(count)d invites."))
