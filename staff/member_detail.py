"""One member's page: the changelist's moderation actions as a dropdown, and the branch
actions (the member and everyone below them in the invite tree)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from unfold.decorators import action

from core.errors import ZspbError
from core.models import User
from core.selectors.users import invite_branch_ids
from core.services.users import invite_branch_ban, invite_branch_disable
from staff.actions import BanForm, ConfirmForm, action_page, actor_of, applied

if TYPE_CHECKING:  # a dev-only package: production installs have no django-stubs-ext
    from django_stubs_ext import StrOrPromise

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
    def view(self: MemberDetailActionsMixin, request: HttpRequest,
             object_id: str) -> HttpResponse:
        return self.run_on_one(request, object_id, name, label)

    view.__name__ = f"member_{name}"
    return action(description=label, url_path=f"member-{name.replace('_', '-')}",
                  permissions=[permission], icon=icon)(view)


class MemberDetailActionsMixin:
    """Mixed into UserAdmin, which provides the ModelAdmin side (actions, queryset, urls)."""

    admin_site: Any
    get_actions: Any
    get_queryset: Any
    _change_url: Any

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
                result = invite_branch_disable(actor=actor_of(request), root=root)
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
                result = invite_branch_ban(actor=actor_of(request), root=root,
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
    setattr(MemberDetailActionsMixin, f"member_{_name}",
            _member_action(_name, _label, _icon, _permission))
