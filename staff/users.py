"""Members: search, filters, moderation actions on a selection, the invite tree.

Role, staff flags and password are never edited through the raw change form: they change only
through the actions below, which call the journaling services. The same actions on one member's
page and the branch actions live in staff/member_detail.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin import ShowFacets
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from unfold.contrib.filters.admin import AutocompleteSelectFilter
from unfold.decorators import display

from core.errors import ZspbError
from core.models import User
from core.selectors.twofactor import twofactor_backup_codes_left, twofactor_is_enrolled
from core.selectors.users import TreeNode, invite_tree
from core.services.bans import ban_create, ban_lift
from core.services.twofactor import twofactor_reset
from core.services.users import (
    user_delete,
    user_end_sessions,
    user_reset_hwid,
    user_resync_discord,
    user_set_password,
    user_set_role,
)
from staff.actions import (
    BanForm,
    ConfirmForm,
    PasswordForm,
    action_page,
    actor_of,
    applied,
    capped,
    run_each,
)
from staff.base import StaffModelAdmin, staff_can
from staff.changelist import EstimatedCountPaginator
from staff.member_detail import MEMBER_ACTIONS, MemberDetailActionsMixin
from staff.user_forms import BannedFilter, DiscordLinkedFilter, RoleChoiceForm, UserProfileForm

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


@admin.register(User)
class UserAdmin(MemberDetailActionsMixin, StaffModelAdmin):
    view_capability = "view_any_stats"
    change_capability = "manage_users"

    form = UserProfileForm
    list_display = ["username", "role", "status", "discord_username", "invited_by",
                    "date_joined"]
    list_select_related = ["role", "invited_by"]
    list_filter = ["role", BannedFilter, DiscordLinkedFilter,
                   ("invited_by", AutocompleteSelectFilter)]
    list_filter_submit = True
    search_fields = ["username", "email", "discord_username"]
    search_help_text = _("Username, e-mail or Discord name")
    ordering = ["-date_joined"]
    # 100,000 members: no full count for "x of y", no per-filter facet counts, an estimated
    # page count on large PostgreSQL tables.
    show_full_result_count = False
    show_facets = ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    list_per_page = 50
    fieldsets = [
        (None, {"fields": ["username", "role", "status", "email", "first_name", "last_name"]}),
        (_("Invites"), {"fields": ["can_invite", "invited_by_link", "invite_tree_view"]}),
        (_("Discord"), {"fields": ["discord_username", "discord_id", "discord_linked_at"]}),
        (_("Security"), {"fields": ["is_staff", "is_superuser", "two_factor", "last_login",
                                    "date_joined", "registration_ip"]}),
    ]
    readonly_fields = ["username", "role", "status", "invited_by_link", "invite_tree_view",
                       "discord_username", "discord_id", "discord_linked_at", "is_staff",
                       "is_superuser", "two_factor", "last_login", "date_joined",
                       "registration_ip"]
    actions = ["ban_users", "unban_users", "change_role", "end_sessions", "resync_discord",
               "reset_hwid", "set_password", "reset_two_factor", "delete_users"]
    actions_detail = [
        {"title": _("Moderate"), "icon": "shield_person",
         "items": [f"member_{name}" for name, *_rest in MEMBER_ACTIONS]},
        "branch_disable_invites", "branch_ban",
    ]

    # Capabilities of the actions (Django calls has_<name>_permission).
    def has_ban_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return staff_can(request, "ban_users")

    def has_manage_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return staff_can(request, "manage_users")

    def has_set_password_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return staff_can(request, "set_passwords")

    def has_delete_users_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return staff_can(request, "delete_users")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Read-only view of members the actor may not act on (rank rules), themselves included.
        if not super().has_change_permission(request, obj):
            return False
        actor = request.user
        return obj is None or (isinstance(actor, User) and actor.can_act_on(obj))

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        """Saved already by user_update_profile in the form's clean()."""

    # Columns and read-only fields

    @display(description=_("Status"), label={_("Banned"): "danger", _("Active"): "success"})
    def status(self, obj: User) -> Any:
        return _("Active") if obj.is_active else _("Banned")

    @display(description=_("Invited by"))
    def invited_by_link(self, obj: User) -> Any:
        return self._user_link(obj.invited_by) if obj.invited_by_id else "-"

    @display(description=_("Two-factor login"))
    def two_factor(self, obj: User) -> Any:
        if not obj.is_staff:
            return _("Not needed (not staff)")
        if not twofactor_is_enrolled(user=obj):
            return _("Not set up yet")
        return _("On, %(count)d backup codes left") % {
            "count": twofactor_backup_codes_left(user=obj)}

    @display(description=_("Invite tree"))
    def invite_tree_view(self, obj: User) -> SafeString:
        tree = invite_tree(user_id=obj.pk)

        def row(node: TreeNode) -> dict[str, Any]:
            pad = f"{(node.depth - 1) * 1.25:.2f}rem"
            return {"node": node, "url": self._change_url(node.id), "pad": pad}

        return SafeString(render_to_string("staff/invite_tree.html", {
            "tree": tree,
            "ancestors": [row(n) for n in reversed(tree.ancestors)],
            "descendants": [row(n) for n in tree.descendants],
        }))

    def _change_url(self, pk: int) -> str:
        return reverse(f"{self.admin_site.name}:core_user_change", args=[pk])

    def _user_link(self, user: User | None) -> Any:
        if user is None:
            return "-"
        return format_html('<a href="{}" class="text-primary-600 dark:text-primary-500">{}</a>',
                           self._change_url(user.pk), user)

    # Changelist actions: an intermediate page where input is needed, then one service call
    # per selected member.

    def _selection(self, request: HttpRequest, queryset: QuerySet[User]) -> list[User] | None:
        return capped(request, queryset.select_related("role").order_by("pk"))

    @admin.action(description=_("Ban selected members"), permissions=["ban"])
    def ban_users(self, request: HttpRequest, queryset: QuerySet[User]) -> HttpResponse | None:
        users = self._selection(request, queryset)
        if users is None:
            return None
        form = BanForm(request.POST if applied(request) else None)
        if form.is_bound and form.is_valid():
            actor, reason = actor_of(request), form.cleaned_data["reason"]
            ends_at = form.ends_at()
            run_each(request, users,
                     lambda u: ban_create(actor=actor, user=u, reason=reason, ends_at=ends_at),
                     done=_("Banned %(count)d members."))
            return None
        return action_page(request, self, title=_("Ban members"), form=form, objects=users,
                           intro=_("Ban these members: they are logged out everywhere, their "
                                   "licence checks fail and their Discord roles are removed."),
                           action="ban_users", selected=[u.pk for u in users],
                           submit=_("Ban"), danger=True)

    def _confirm(self, request: HttpRequest, users: list[User], *, action: str,
                 intro: StrOrPromise) -> HttpResponse:
        """Actions that ask nothing are still confirmed first, listing whom they touch."""
        return action_page(request, self, title=intro, intro=intro, form=ConfirmForm(),
                           objects=users, action=action, selected=[u.pk for u in users],
                           submit=_("Confirm"))

    @admin.action(description=_("Lift the ban of selected members"), permissions=["ban"])
    def unban_users(self, request: HttpRequest,
                   queryset: QuerySet[User]) -> HttpResponse | None:
        users = self._selection(request, queryset)
        if users is None:
            return None
        if not applied(request):
            return self._confirm(request, users, action="unban_users",
                                 intro=_("Lift the ban of these members?"))
        actor = actor_of(request)
        run_each(request, users, lambda u: ban_lift(actor=actor, user=u),
                 done=_("Lifted the ban of %(count)d members."))
        return None

    @admin.action(description=_("Change the role of selected members"), permissions=["manage"])
    def change_role(self, request: HttpRequest, queryset: QuerySet[User]) -> HttpResponse | None:
        users = self._selection(request, queryset)
        if users is None:
            return None
        actor = actor_of(request)
        form = RoleChoiceForm(request.POST if applied(request) else None, actor=actor)
        if form.is_bound and form.is_valid():
            role = form.cleaned_data["role"]
            run_each(request, users, lambda u: user_set_role(actor=actor, user=u, role=role),
                     done=_("Changed the role of %(count)d members."))
            return None
        return action_page(request, self, title=_("Change role"), form=form, objects=users,
                           intro=_("Give these members another role (only roles below your "
                                   "own are offered)."),
                           action="change_role", selected=[u.pk for u in users])

    @admin.action(description=_("End all sessions of selected members"), permissions=["manage"])
    def end_sessions(self, request: HttpRequest,
                    queryset: QuerySet[User]) -> HttpResponse | None:
        users = self._selection(request, queryset)
        if users is None:
            return None
        if not applied(request):
            return self._confirm(request, users, action="end_sessions",
                                 intro=_("Log these members out everywhere? Acting on your "
                                         "own account logs you out too."))
        actor = actor_of(request)
        run_each(request, users, lambda u: user_end_sessions(actor=actor, user=u),
                 done=_("Ended the sessions of %(count)d members."))
        return None

    @admin.action(description=_("Resync Discord roles"), permissions=["manage"])
    def resync_discord(self, request: HttpRequest,
                      queryset: QuerySet[User]) -> HttpResponse | None:
        users = self._selection(request, queryset)
        if users is None:
            return None
        if not applied(request):
            return self._confirm(request, users, action="resync_discord",
                                 intro=_("Queue a Discord role sync for these members?"))
        actor = actor_of(request)
        run_each(request, users, lambda u: user_resync_discord(actor=actor, user=u),
                 done=_("Queued a Discord role sync for %(count)d members."))
        return None

    @admin.action(description=_("Reset hardware ID of all their subscriptions"),
                  permissions=["manage"])
    def reset_hwid(self, request: HttpRequest,
                  queryset: QuerySet[User]) -> HttpResponse | None:
        users = self._selection(request, queryset)
        if users is None:
            return None
        if not applied(request):
            return self._confirm(request, users, action="reset_hwid",
                                 intro=_("Unbind the machine of every subscription of "
                                         "these members?"))
        actor = actor_of(request)
        run_each(request, users, lambda u: user_reset_hwid(actor=actor, user=u),
                 done=_("Reset the hardware ID of %(count)d members."))
        return None

    @admin.action(description=_("Set password"), permissions=["set_password"])
    def set_password(self, request: HttpRequest, queryset: QuerySet[User]) -> HttpResponse | None:
        users = self._selection(request, queryset)
        if users is None:
            return None
        if len(users) != 1:
            messages.error(request, _("Select exactly one member to set a password."))
            return None
        form = PasswordForm(request.POST if applied(request) else None)
        if form.is_bound and form.is_valid():
            try:
                user_set_password(actor=actor_of(request), user=users[0],
                                  password=form.cleaned_data["password1"])
            except ZspbError as exc:
                form.add_error(None, exc.message)
                for problem in exc.details.get("fields", {}).get("password", []) or []:
                    form.add_error("password1", problem)
            else:
                messages.success(request, _("Password of %(user)s set; their sessions ended.")
                                 % {"user": users[0]})
                return None
        return action_page(request, self, title=_("Set password"), form=form, objects=users,
                           intro=_("Set a new password. The member is logged out everywhere."),
                           action="set_password", selected=[users[0].pk])

    @admin.action(description=_("Reset two-factor device"), permissions=["set_password"])
    def reset_two_factor(self, request: HttpRequest,
                         queryset: QuerySet[User]) -> HttpResponse | None:
        users = self._selection(request, queryset)
        if users is None:
            return None
        if applied(request):
            actor = actor_of(request)
            run_each(request, users, lambda u: twofactor_reset(actor=actor, user=u),
                     done=_("Reset the two-factor device of %(count)d members."))
            return None
        return action_page(request, self, title=_("Reset two-factor device"),
                           form=ConfirmForm(), objects=users,
                           intro=_("Remove the authenticator and backup codes of these staff "
                                   "members. They must set up two-factor login again at their "
                                   "next visit."),
                           action="reset_two_factor", selected=[u.pk for u in users],
                           submit=_("Reset"), danger=True)

    @admin.action(description=_("Delete selected members"), permissions=["delete_users"])
    def delete_users(self, request: HttpRequest, queryset: QuerySet[User]) -> HttpResponse | None:
        users = self._selection(request, queryset)
        if users is None:
            return None
        if applied(request):
            actor = actor_of(request)
            run_each(request, users, lambda u: user_delete(actor=actor, user=u),
                     done=_("Deleted %(count)d members."))
            return None
        return action_page(request, self, title=_("Delete members"), form=ConfirmForm(),
                           objects=users,
                           intro=_("Delete these accounts for good, with their subscriptions "
                                   "and invites. The journal keeps their names. This cannot be "
                                   "undone."),
                           action="delete_users", selected=[u.pk for u in users],
                           submit=_("Yes, delete"), danger=True)
