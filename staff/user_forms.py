"""The member admin's filters and forms: banned / Discord-linked filters, the role picker and
the profile form, which saves through user_update_profile so a refusal shows on the form."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from unfold.widgets import UnfoldAdminSelectWidget

from core.errors import ZspbError
from core.models import Role, User
from core.services.users import PROFILE_FIELDS, user_update_profile


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
        grantable = [role.pk for role in Role.objects.all() if actor.can_grant(role)]
        field.queryset = Role.objects.filter(pk__in=grantable).order_by("rank")


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

