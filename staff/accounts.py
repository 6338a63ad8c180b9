"""People: members (search, filters, moderation actions, invite tree), bans, invites, groups.

Role, staff flags and password are never edited through the raw change form: they change only
through the actions below, which call the journaling services.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import ShowFacets
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from unfold.contrib.filters.admin import AutocompleteSelectFilter
from unfold.decorators import action, display
from unfold.widgets import UnfoldAdminSelectWidget

from core.errors import ZspbError
from core.models import Ban, Invite, Role, User
from core.selectors.twofactor import twofactor_backup_codes_left, twofactor_is_enrolled
from core.selectors.users import TreeNode, invite_branch_ids, invite_tree
from core.services.bans import ban_create, ban_lift
from core.services.invites import invite_revoke
from core.services.twofactor import twofactor_reset
from core.services.users import (
    PROFILE_FIELDS,
    invite_branch_ban,
    invite_branch_disable,
    user_delete,
    user_end_sessions,
    user_reset_hwid,
    user_resync_discord,
    user_set_password,
    user_set_role,
    user_update_profile,
)
from staff.actions import (
    BanForm,
    ConfirmForm,
    PasswordForm,
    action_page,
    applied,
    capped,
    run_each,
)
from staff.base import StaffModelAdmin, staff_can
from staff.changelist import EstimatedCountPaginator

if TYPE_CHECKING:  # a dev-only package: production installs have no django-stubs-ext
    from django_stubs_ext import StrOrPromise

admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(BaseGroupAdmin, StaffModelAdmin):
    # Django groups carry model permissions, which this site does not use (capabilities live
    # on roles); kept for completeness, Admin only.
    view_capability = "manage_roles"
    add_capability = "manage_roles"
    change_capability = "manage_roles"
    delete_capability = "manage_roles"


class BannedFilter(admin.SimpleListFilter):
    title = _("banned")
    parameter_name = "banned"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("Banned")), ("no", _("Not banned"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> QuerySet[User]:
        # A ban deactivates the account (core.services.bans), so is_active is the flag.
        if self.value() == "yes":
            return queryset.filter(is_active=False)
        if self.value() == "no":
            return queryset.filter(is_active=True)
        return queryset


class DiscordLinkedFilter(admin.SimpleListFilter):
    title = _("Discord linked")
    parameter_name = "discord"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("Linked")), ("no", _("Not linked"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> QuerySet[User]:
        if self.value() == "yes":
            return queryset.filter(discord_id__isnull=False)
        if self.value() == "no":
            return queryset.filter(discord_id__isnull=True)
        return queryset


class RoleChoiceForm(forms.Form):
    role = forms.ModelChoiceField(queryset=Role.objects.none(), label=_("New role"),
                                  widget=UnfoldAdminSelectWidget)

    def __init__(self, *args: Any, actor: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only grantable roles are offered; the service enforces the same rule.
        field = self.fields["role"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = Role.objects.filter(rank__lt=actor.rank).order_by("rank")


class UserProfileForm(forms.ModelForm):
    """The change form: profile fields only, saved by user_update_profile during clean()
    so that a refusal shows on the form instead of after a pretend save."""

    actor: User

    class Meta:
        model = User
        fields = sorted(PROFILE_FIELDS)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors or not self.instance.pk:
            return data
        changes = {f: data[f] for f in self.changed_data if f in PROFILE_FIELDS}
        if changes:
            try:
                user_update_profile(actor=self.actor, user=self.instance, changes=changes)
            except ZspbError as exc:
                raise ValidationError(exc.message) from exc
        return data


# The member actions again on the change page, as one dropdown (the same action code runs).
MEMBER_ACTIONS: list[tuple[str, Any, str, str]] = [
    ("ban_users", _("Ban"), "gavel", "ban"),
    ("unban_users", _("Lift the ban"), "lock_open", "ban"),
    ("change_role", _("Change role"), "badge", "manage"),
    ("end_sessions", _("End all sessions"), "logout", "manage"),
    ("resync_discord", _("Resync Discord roles"), "sync", "manage"),
    ("reset_hwid", _("Reset hardware ID"), "memory", "manage"),
    ("set_password", _("Set password"), "password", "set_password"),
    ("reset_two_factor", _("Reset two-factor device"), "phonelink_erase", "set_password"),
    ("delete_users", _("Delete"), "delete", "delete_users"),
]
# Actions that change something without asking anything: confirmed on a page first when
# started from the change page (a link is a GET, which must not change state).
NO_FORM_ACTIONS = {"unban_users", "end_sessions", "resync_discord", "reset_hwid"}


def _member_action(name: str, label: Any, icon: str, permission: str) -> Any:
    def view(self: UserAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
        return self.run_on_one(request, object_id, name, label)

    view.__name__ = f"member_{name}"
    return action(description=label, url_path=f"member-{name.replace('_', '-')}",
                  permissions=[permission], icon=icon)(view)


@admin.register(User)
class UserAdmin(StaffModelAdmin):
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
        return obj is None or (isinstance(actor, User) and obj.pk != actor.pk
                               and obj.rank < actor.rank)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False,
                 **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        form.actor = request.user
        return form

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
        from django.utils.html import format_html

        if user is None:
            return "-"
        return format_html('<a href="{}" class="text-primary-600 dark:text-primary-500">{}</a>',
                           self._change_url(user.pk), user)

    # Changelist actions: an intermediate page where input is needed, then one service call
    # per selected member.

    def _selection(self, request: HttpRequest, queryset: QuerySet[User]) -> list[User] | None:
        return capped(request, list(queryset.select_related("role").order_by("pk")))

    def _actor(self, request: HttpRequest) -> User:
        actor = request.user
        assert isinstance(actor, User)
        return actor

    @admin.action(description=_("Ban selected members"), permissions=["ban"])
    def ban_users(self, request: HttpRequest, queryset: QuerySet[User]) -> HttpResponse | None:
        users = self._selection(request, queryset)
        if users is None:
            return None
        form = BanForm(request.POST if applied(request) else None)
        if form.is_bound and form.is_valid():
            actor, reason = self._actor(request), form.cleaned_data["reason"]
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

    @admin.action(description=_("Lift the ban of selected members"), permissions=["ban"])
    def unban_users(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        users = self._selection(request, queryset)
        if users is not None:
            actor = self._actor(request)
            run_each(request, users, lambda u: ban_lift(actor=actor, user=u),
                     done=_("Lifted the ban of %(count)d members."))

    @admin.action(description=_("Change the role of selected members"), permissions=["manage"])
    def change_role(self, request: HttpRequest, queryset: QuerySet[User]) -> HttpResponse | None:
        users = self._selection(request, queryset)
        if users is None:
            return None
        actor = self._actor(request)
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
    def end_sessions(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        users = self._selection(request, queryset)
        if users is not None:
            actor = self._actor(request)
            run_each(request, users, lambda u: user_end_sessions(actor=actor, user=u),
                     done=_("Ended the sessions of %(count)d members."))

    @admin.action(description=_("Resync Discord roles"), permissions=["manage"])
    def resync_discord(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        users = self._selection(request, queryset)
        if users is not None:
            actor = self._actor(request)
            run_each(request, users, lambda u: user_resync_discord(actor=actor, user=u),
                     done=_("Queued a Discord role sync for %(count)d members."))

    @admin.action(description=_("Reset hardware ID of all their subscriptions"),
                  permissions=["manage"])
    def reset_hwid(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        users = self._selection(request, queryset)
        if users is not None:
            actor = self._actor(request)
            run_each(request, users, lambda u: user_reset_hwid(actor=actor, user=u),
                     done=_("Reset the hardware ID of %(count)d members."))

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
                user_set_password(actor=self._actor(request), user=users[0],
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
            actor = self._actor(request)
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
            actor = self._actor(request)
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

    # The same actions from the change page.

    def run_on_one(self, request: HttpRequest, object_id: str, name: str,
                   label: Any) -> HttpResponse:
        """Run changelist action `name` on one member; its page posts back here."""
        actions = self.get_actions(request)
        if name not in actions:
            raise DjangoPermissionDenied
        queryset = self.get_queryset(request).filter(pk=object_id)
        member = queryset.first()
        if member is None:
            return HttpResponseRedirect(reverse(f"{self.admin_site.name}:core_user_changelist"))
        if name in NO_FORM_ACTIONS and not applied(request):
            return action_page(request, self, title=label, form=ConfirmForm(), objects=[member],
                               intro=_("Apply to this member?"), post_url=request.path)
        response = actions[name][0](self, request, queryset)
        if response is not None:
            return response
        if name == "delete_users" and not User.objects.filter(pk=member.pk).exists():
            return HttpResponseRedirect(reverse(f"{self.admin_site.name}:core_user_changelist"))
        return self._back(member)

    # Branch actions on the change page: the member and everyone below them.

    def _branch_root(self, object_id: str) -> User | None:
        return User.objects.select_related("role").filter(pk=object_id).first()

    def _back(self, root: User) -> HttpResponseRedirect:
        return HttpResponseRedirect(self._change_url(root.pk))

    def _branch_report(self, request: HttpRequest, result: Any, done: StrOrPromise) -> None:
        messages.success(request, done % {"count": result.changed})
        if result.skipped:
            messages.warning(request, ngettext(
                "%(count)d member skipped: ranked at or above you.",
                "%(count)d members skipped: ranked at or above you.", result.skipped)
                % {"count": result.skipped})
        if result.truncated:
            messages.warning(request, _("The branch is larger than one action covers; run it "
                                        "again lower in the tree for the rest."))

    @action(description=_("Disable inviting for the branch"), url_path="branch-disable-invites",
            permissions=["manage"], icon="block")
    def branch_disable_invites(self, request: HttpRequest, object_id: str) -> HttpResponse:
        root = self._branch_root(object_id)
        if root is None:
            return HttpResponseRedirect(reverse(f"{self.admin_site.name}:core_user_changelist"))
        if applied(request):
            try:
                result = invite_branch_disable(actor=self._actor(request), root=root)
            except ZspbError as exc:
                messages.error(request, exc.message)
            else:
                self._branch_report(request, result, _("Inviting disabled for %(count)d "
                                                       "members."))
            return self._back(root)
        size = len(invite_branch_ids(root_id=root.pk).ids)
        return action_page(request, self, title=_("Disable inviting for the branch"),
                           form=ConfirmForm(), objects=[root],
                           intro=_("%(user)s and the %(count)d members below them will no "
                                   "longer be able to create invites.")
                           % {"user": root, "count": size - 1},
                           post_url=request.path, submit=_("Disable inviting"))

    @action(description=_("Ban the branch"), url_path="branch-ban", permissions=["ban"],
            icon="gavel")
    def branch_ban(self, request: HttpRequest, object_id: str) -> HttpResponse:
        root = self._branch_root(object_id)
        if root is None:
            return HttpResponseRedirect(reverse(f"{self.admin_site.name}:core_user_changelist"))
        form = BanForm(request.POST if applied(request) else None)
        if form.is_bound and form.is_valid():
            try:
                result = invite_branch_ban(actor=self._actor(request), root=root,
                                           reason=form.cleaned_data["reason"],
                                           ends_at=form.ends_at())
            except ZspbError as exc:
                messages.error(request, exc.message)
            else:
                self._branch_report(request, result, _("Banned %(count)d members."))
                if result.unchanged:
                    messages.info(request, ngettext(
                        "%(count)d member was already banned.",
                        "%(count)d members were already banned.", result.unchanged)
                        % {"count": result.unchanged})
            return self._back(root)
        size = len(invite_branch_ids(root_id=root.pk).ids)
        return action_page(request, self, title=_("Ban the branch"), form=form, objects=[root],
                           intro=_("Ban %(user)s and the %(count)d members below them in the "
                                   "invite tree.") % {"user": root, "count": size - 1},
                           post_url=request.path, submit=_("Ban the branch"), danger=True)


for _name, _label, _icon, _permission in MEMBER_ACTIONS:
    setattr(UserAdmin, f"member_{_name}", _member_action(_name, _label, _icon, _permission))


class BanStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("active", _("Active")), ("expired", _("Expired or lifted"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Ban]) -> QuerySet[Ban]:
        now = timezone.now()
        active = Q(lifted_at__isnull=True) & (Q(ends_at__isnull=True) | Q(ends_at__gt=now))
        if self.value() == "active":
            return queryset.filter(active)
        if self.value() == "expired":
            return queryset.exclude(active)
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
        bans = capped(request, list(queryset.filter(lifted_at__isnull=True)
                                    .select_related("user__role")))
        if bans is not None:
            actor = request.user
            assert isinstance(actor, User)
            run_each(request, bans, lambda b: ban_lift(actor=actor, user=b.user),
                     done=_("Lifted %(count)d bans."))


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
        invites = capped(request, list(queryset))
        if invites is not None:
            actor = request.user
            assert isinstance(actor, User)
            run_each(request, invites, lambda i: invite_revoke(actor=actor, invite_id=i.pk),
                     done=_("Revoked %(count)d invites."))
