"""The role editor: rank, Discord role, monthly invite quota or unlimited, permissions, staff.

Edits go through core.services.roles (manage_roles only, never a role at or above the editor's
rank, journaled with before/after), called during the form's clean() so that a refusal shows
on the form.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from unfold.widgets import UnfoldAdminCheckboxSelectMultipleWidget, UnfoldBooleanSwitchWidget

from config.behaviour import CAPABILITIES
from core.errors import ZspbError
from core.models import Role, User
from core.services.roles import ROLE_FIELDS, role_create, role_update
from staff.base import StaffModelAdmin

CAPABILITY_LABELS = {
    "view_any_stats": _("View any member's stats"),
    "ban_users": _("Ban and unban"),
    "generate_keys": _("Generate keys"),
    "manage_users": _("Manage members (roles below own, Discord resync, HWID reset)"),
    "manage_keys": _("Manage keys"),
    "manage_products": _("Manage products"),
    "manage_loader": _("Upload loader releases"),
    "manage_roles": _("Edit roles and quotas"),
    "delete_users": _("Delete members"),
    "set_passwords": _("Set passwords, reset two-factor devices"),
}


class RoleForm(forms.ModelForm):
    actor: User
    unlimited_invites = forms.BooleanField(
        label=_("Unlimited invites"), required=False, widget=UnfoldBooleanSwitchWidget,
        help_text=_("On: no monthly limit, the quota below is ignored."))
    permissions = forms.MultipleChoiceField(
        label=_("Permissions"), required=False,
        choices=[(c, CAPABILITY_LABELS.get(c, c)) for c in sorted(CAPABILITIES)],
        widget=UnfoldAdminCheckboxSelectMultipleWidget)

    class Meta:
        model = Role
        fields = ["key", "name", "rank", "discord_role_id", "unlimited_invites",
                  "invite_quota", "staff", "permissions"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and "permissions" in self.fields:  # absent when read-only
            self.fields["unlimited_invites"].initial = self.instance.invite_quota is None
            self.fields["permissions"].initial = list(self.instance.permissions or [])
        if "key" in self.fields and self.instance.pk:
            self.fields["key"].disabled = True

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("unlimited_invites"):
            data["invite_quota"] = None
        elif data.get("invite_quota") is None and not self.errors:
            self.add_error("invite_quota", _("Set a monthly quota or tick unlimited."))
        if self.errors:
            return data
        fields = {f: data.get(f) for f in ROLE_FIELDS}
        fields["permissions"] = list(data.get("permissions") or [])
        try:
            if self.instance.pk:
                self.saved = role_update(actor=self.actor, role=self.instance, changes=fields)
            else:
                self.saved = role_create(actor=self.actor, key=data.get("key") or "",
                                         fields=fields)
        except ZspbError as exc:
            for name, _code in (exc.details.get("fields") or {}).items():
                if name in self.fields:
                    self.add_error(name, exc.message)
                    break
            else:
                raise ValidationError(exc.message) from exc
        return data

    def _post_clean(self) -> None:
        # The service saved the role; model validation would now see its own row as a clash.
        if not hasattr(self, "saved"):
            super()._post_clean()  # type: ignore[misc]


@admin.register(Role)
class RoleAdmin(StaffModelAdmin):
    add_capability = "manage_roles"
    change_capability = "manage_roles"
    form = RoleForm
    list_display = ["name", "key", "rank", "quota", "staff", "discord_role_id", "updated_at"]
    ordering = ["-rank"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Roles at or above the editor's own rank are shown read-only.
        if not super().has_change_permission(request, obj):
            return False
        actor = request.user
        return obj is None or (isinstance(actor, User) and actor.can_grant(obj))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and not self.has_change_permission(request, obj):
            return ["key", "name", "rank", "discord_role_id", "invite_quota", "staff",
                    "permissions"]
        return []

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and not self.has_change_permission(request, obj):
            return self.get_readonly_fields(request, obj)
        return super().get_fields(request, obj)

    def save_model(self, request: HttpRequest, obj: Role, form: Any, change: bool) -> None:
        # Saved by the service in the form's clean(); the admin goes on with the stored row.
        for field in Role._meta.concrete_fields:
            setattr(obj, field.attname, getattr(form.saved, field.attname))

    @admin.display(description=_("Monthly invites"))
    def quota(self, obj: Role) -> Any:
        return _("unlimited") if obj.invite_quota is None else obj.invite_quota
