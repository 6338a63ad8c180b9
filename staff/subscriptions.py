"""Subscriptions: the list, extending or shortening with a reason, HWID reset, CSV export."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from unfold.decorators import display
from unfold.widgets import (
    UnfoldAdminIntegerFieldWidget,
    UnfoldAdminRadioSelectWidget,
    UnfoldAdminTextareaWidget,
)

from core.models import Subscription
from core.models.subscriptions import SubscriptionQuerySet
from core.services.licensing import subscription_reset_hwid
from core.services.subscriptions import subscription_adjust
from staff.actions import action_page, actor_of, applied, capped, run_each
from staff.base import StaffModelAdmin, staff_can
from staff.changelist import ScaledChangeListMixin, user_filter
from staff.csv_export import CsvColumn, CsvExportMixin, field_column
from staff.keygen import format_duration

# Both actions list what they act on; a longer selection is refused whole, never truncated.
ADJUST_MAX = 500


class ActiveFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("active", pgettext_lazy("subscription", "Active")),
                ("expired", _("Expired"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        rows = cast(SubscriptionQuerySet, queryset)  # the admin's queryset is the model's
        if self.value() == "active":
            return rows.active()
        if self.value() == "expired":
            return rows.expired()
        return queryset


class AdjustForm(forms.Form):
    direction = forms.ChoiceField(label=_("Change"), initial="extend",
                                  choices=[("extend", _("Extend")), ("shorten", _("Shorten"))],
                                  widget=UnfoldAdminRadioSelectWidget)
    days = forms.IntegerField(label=_("Days"), min_value=0, max_value=3650, initial=0,
                              widget=UnfoldAdminIntegerFieldWidget)
    hours = forms.IntegerField(label=_("Hours"), min_value=0, max_value=23, initial=0,
                               widget=UnfoldAdminIntegerFieldWidget)
    reason = forms.CharField(label=_("Reason"), max_length=500,
                             widget=UnfoldAdminTextareaWidget(attrs={"rows": 3}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not (data.get("days") or data.get("hours")):
            raise forms.ValidationError(_("Give a number of days or hours."))
        return data

    def delta(self) -> timedelta:
        data = self.cleaned_data
        delta = timedelta(days=data["days"], hours=data["hours"])
        return delta if data["direction"] == "extend" else -delta


@admin.register(Subscription)
class SubscriptionAdmin(CsvExportMixin, ScaledChangeListMixin, StaffModelAdmin):
    view_capability = "view_any_stats"
    list_display = ["id", "user", "product", "started_at", "expires_at", "time_left",
                    "hwid_bound"]
    list_filter = ["product", ActiveFilter, user_filter("user", str(_("user (id or username)")))]
    list_filter_submit = True
    list_select_related = ["user", "product"]
    ordering = ["-id"]
    actions = ["adjust_subscriptions", "reset_hwid", "export_selected_csv"]
    fields = ["user", "product", "started_at", "expires_at", "time_left", "hwid_bound",
              "updated_at"]
    readonly_fields = fields
    csv_filename = "subscriptions"
    csv_columns = [field_column("id"), field_column("user_id"), field_column("user.username"),
                   CsvColumn("product", lambda s: s.product.slug), field_column("started_at"),
                   field_column("expires_at"), CsvColumn("hwid_bound", lambda s: bool(
                       s.hwid_digest))]

    def has_manage_users_permission(self, request: HttpRequest) -> bool:
        return staff_can(request, "manage_users")

    @display(description=_("time left"))
    def time_left(self, obj: Subscription) -> str:
        now = timezone.now()
        if obj.expires_at is None or not obj.active_at(now):  # None: an unsaved row
            return str(_("expired")) if obj.expires_at else "-"
        return format_duration(obj.expires_at - now)

    @display(description=_("HWID bound"), boolean=True)
    def hwid_bound(self, obj: Subscription) -> bool:
        return bool(obj.hwid_digest)

    @admin.action(description=_("Extend or shorten..."), permissions=["manage_users"])
    def adjust_subscriptions(self, request: HttpRequest, queryset: QuerySet[Subscription]
                             ) -> TemplateResponse | None:
        subscriptions = capped(request, queryset.select_related("user", "product"),
                               limit=ADJUST_MAX)
        if subscriptions is None:
            return None
        form = AdjustForm(request.POST if applied(request) else None)
        if form.is_bound and form.is_valid():
            actor, delta, reason = actor_of(request), form.delta(), form.cleaned_data["reason"]
            run_each(request, subscriptions,
                     lambda s: subscription_adjust(actor=actor, subscription_id=s.pk,
                                                   delta=delta, reason=reason),
                     done=_("%(count)d subscriptions changed."))
            return None
        return action_page(request, self, title=_("Extend or shorten subscriptions"), form=form,
                           objects=subscriptions,
                           intro=_("Extend or shorten these subscriptions; the reason is "
                                   "journaled."),
                           action="adjust_subscriptions", selected=[s.pk for s in subscriptions],
                           submit=_("Apply"))

    @admin.action(description=_("Reset HWID binding"), permissions=["manage_users"])
    def reset_hwid(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        subscriptions = capped(request, queryset.select_related("user", "product"),
                               limit=ADJUST_MAX)
        if subscriptions is not None:
            actor = actor_of(request)
            run_each(request, subscriptions,
                     lambda s: subscription_reset_hwid(actor=actor, subscription_id=s.pk),
                     done=_("HWID reset on %(count)d subscriptions."))
