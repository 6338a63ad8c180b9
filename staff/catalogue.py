"""Catalogue admins: products, licence keys, subscriptions, loader releases.

Each action parses its input, calls one service and reports the outcome; the services check
capabilities and rank rules again, so the admin's checks are only the first gate.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import URLPattern, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from unfold.decorators import action, display
from unfold.widgets import (
    UnfoldAdminFileFieldWidget,
    UnfoldAdminIntegerFieldWidget,
    UnfoldAdminRadioSelectWidget,
    UnfoldAdminTextareaWidget,
    UnfoldAdminTextInputWidget,
)

from core.errors import ZspbError
from core.models import LicenseKey, LoaderRelease, Product, Subscription, User
from core.services.keys import REVOKE_MAX, key_lookup_digest, key_revoke, keys_export
from core.services.licensing import subscription_reset_hwid
from core.services.logs import Category, log_event
from core.services.releases import release_create, release_publish
from core.services.subscriptions import subscription_adjust
from staff import keygen
from staff.base import StaffModelAdmin, staff_can
from staff.changelist import ScaledChangeListMixin, UUIDFilter, user_filter
from staff.csv_export import CsvColumn, CsvExportMixin, csv_of, field_column
from staff.keygen import format_duration

# An intermediate form lists what it acts on; a longer selection is refused, not truncated.
ADJUST_MAX = 500


def _actor(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # admin views run only for a logged-in staff member
    return user


def _form_page(request: HttpRequest, model_admin: admin.ModelAdmin[Any], **context: Any
               ) -> TemplateResponse:
    return TemplateResponse(request, "staff/form_page.html", {
        **model_admin.admin_site.each_context(request), "opts": model_admin.model._meta,
        **context,
    })


def _action_hidden(action_name: str, objects: list[Any]) -> list[tuple[str, object]]:
    """Fields that bring an intermediate form back to the same changelist action."""
    return [("action", action_name),
            *((ACTION_CHECKBOX_NAME, obj.pk) for obj in objects)]


# --- Products --------------------------------------------------------------------------------

@admin.register(Product)
class ProductAdmin(StaffModelAdmin):
    view_capability = None
    add_capability = change_capability = delete_capability = "manage_products"
    list_display = ["name", "slug", "is_active", "discord_role_id", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ("name",)}
    fields = ["name", "slug", "is_active", "discord_role_id"]

    def save_model(self, request: HttpRequest, obj: Product, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        log_event(category=Category.MODERATION,
                  action="product.update" if change else "product.create", actor=_actor(request),
                  data={"product_id": obj.pk, "slug": obj.slug,
                        "changed": list(form.changed_data)})

    def delete_model(self, request: HttpRequest, obj: Product) -> None:
        data = {"product_id": obj.pk, "slug": obj.slug}
        super().delete_model(request, obj)
        log_event(category=Category.MODERATION, action="product.delete", actor=_actor(request),
                  data=data)


# --- Keys ------------------------------------------------------------------------------------

class BatchFilter(UUIDFilter):
    title = _("batch")
    parameter_name = "batch"
    field = "batch"


MASK = "\u2022" * 5


def mask_code(code: str) -> str:
    """ZSPB-•••••-•••••-•••••-AB12C: enough to tell keys apart, not enough to redeem one."""
    groups = code.split("-")
    if len(groups) < 3:
        return MASK
    return "-".join([groups[0], *[MASK] * (len(groups) - 2), groups[-1]])


def key_term(key: LicenseKey, now: Any = None) -> str:
    """Free: the duration it will give. Redeemed: the time left on the subscription."""
    if key.status == LicenseKey.Status.FREE:
        return str(_("%(duration)s, not started") % {"duration": format_duration(key.duration)})
    if key.status == LicenseKey.Status.REVOKED:
        return "-"
    expires = getattr(key, "subscription_expires_at", None)
    if expires is None:
        return "-"
    left = expires - (now or timezone.now())
    if left <= timedelta(0):
        return str(_("expired"))
    return str(_("%(left)s left") % {"left": format_duration(left)})


KEY_COLUMNS = [
    field_column("id"),
    CsvColumn("product", lambda key: key.product.slug),
    field_column("status"),
    CsvColumn("duration", lambda key: format_duration(key.duration)),
    CsvColumn("duration_seconds", lambda key: int(key.duration.total_seconds())),
    CsvColumn("term", key_term),
    CsvColumn("batch", lambda key: str(key.batch)),
    field_column("note"),
    field_column("redeem_by"),
    field_column("created_by_id"),
    field_column("created_at"),
    field_column("redeemed_by_id"),
    field_column("redeemed_at"),
]


@admin.register(LicenseKey)
class LicenseKeyAdmin(CsvExportMixin, ScaledChangeListMixin, StaffModelAdmin):
    """Any staff member may look; only those who may generate or manage keys see codes."""

    view_capability = None
    list_filter = ["product", "status", BatchFilter,
                   user_filter("created_by", str(_("creator (id or username)")))]
    list_filter_submit = True
    list_select_related = ["product", "created_by", "redeemed_by"]
    # The search box takes one exact key code, matched through its digest (get_search_results).
    search_fields = ["code_digest"]
    search_help_text = _("An exact key code, e.g. ZSPB-XXXXX-XXXXX-XXXXX-XXXXX")
    ordering = ["-id"]  # the primary key's index: no sort of the whole table
    actions = ["revoke_keys", "export_selected_csv"]
    actions_list = ["generate_keys_page"]
    csv_filename = "keys"

    def has_generate_keys_permission(self, request: HttpRequest) -> bool:
        return staff_can(request, "generate_keys")

    def has_manage_keys_permission(self, request: HttpRequest) -> bool:
        return staff_can(request, "manage_keys")

    def _codes_visible(self, request: HttpRequest) -> bool:
        return staff_can(request, "generate_keys") or staff_can(request, "manage_keys")

    def get_queryset(self, request: HttpRequest) -> QuerySet[LicenseKey]:
        # Time left of a redeemed key: its owner's subscription to the key's product.
        expires = Subscription.objects.filter(
            user_id=OuterRef("redeemed_by_id"), product_id=OuterRef("product_id")
        ).values("expires_at")[:1]
        return super().get_queryset(request).annotate(subscription_expires_at=Subquery(expires))

    def get_list_display(self, request: HttpRequest) -> list[str]:
        code = "code_plain" if self._codes_visible(request) else "code_masked"
        return ["id", code, "product", "status_label", "term", "batch_link", "created_by",
                "created_at", "redeemed_by"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        code = "code_plain" if self._codes_visible(request) else "code_masked"
        return [code, "product", "status", "duration_text", "term", "batch", "note", "redeem_by",
                "created_by", "created_at", "redeemed_by", "redeemed_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self.get_fields(request, obj)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[LicenseKey],
                           search_term: str) -> tuple[QuerySet[LicenseKey], bool]:
        # Never a LIKE over the table, never a filter on the encrypted column (matches nothing).
        term = search_term.strip()
        if not term:
            return queryset, False
        lookup = key_lookup_digest(term)
        return (queryset.filter(code_digest=lookup) if lookup else queryset.none()), False

    @display(description=_("code"))
    def code_plain(self, obj: LicenseKey) -> str:
        return format_html('<span class="font-mono whitespace-nowrap">{}</span>', obj.code)

    @display(description=_("code"))
    def code_masked(self, obj: LicenseKey) -> str:
        return format_html('<span class="font-mono whitespace-nowrap">{}</span>',
                           mask_code(obj.code))

    @display(description=_("status"), label={"free": "success", "redeemed": "info",
                                             "revoked": "danger"})
    def status_label(self, obj: LicenseKey) -> tuple[str, str]:
        return obj.status, obj.get_status_display()

    @display(description=_("duration / time left"))
    def term(self, obj: LicenseKey) -> str:
        return key_term(obj)

    @display(description=_("duration"))
    def duration_text(self, obj: LicenseKey) -> str:
        return format_duration(obj.duration)

    @display(description=_("batch"))
    def batch_link(self, obj: LicenseKey) -> str:
        return format_html('<a href="?batch={}" title="{}">{}</a>', obj.batch, obj.batch,
                           str(obj.batch)[:8])

    @admin.action(description=_("Revoke selected free keys"), permissions=["manage_keys"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[LicenseKey]) -> None:
        ids = list(queryset.order_by().values_list("pk", flat=True)[:REVOKE_MAX + 1])
        try:
            revoked = key_revoke(actor=_actor(request), key_ids=ids)
        except ZspbError as exc:
            messages.error(request, exc.message)
            return
        skipped = len(ids) - revoked
        messages.success(request, _("%(revoked)s keys revoked; %(skipped)s were not free and "
                                    "were left alone.") % {"revoked": revoked,
                                                           "skipped": skipped})

    @action(description=_("Generate keys"), url_path="generate", icon="key",
            permissions=["generate_keys"])
    def generate_keys_page(self, request: HttpRequest) -> HttpResponse:
        return keygen.generate_view(self, request)

    def csv_export(self, request: HttpRequest, queryset: QuerySet[Any], *, scope: str
                   ) -> Any:
        export = keys_export(actor=_actor(request), keys=queryset, scope=scope)
        columns = KEY_COLUMNS[:1] + ([CsvColumn("code", lambda key: key.code)]
                                     if export.with_codes else []) + KEY_COLUMNS[1:]
        return csv_of(filename=self.csv_export_filename(), columns=columns, objects=export.keys)

    def get_urls(self) -> list[URLPattern]:
        return keygen.urls(self) + super().get_urls()


# --- Subscriptions ---------------------------------------------------------------------------

class ActiveFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("active", _("Active")), ("expired", _("Expired"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        now = timezone.now()
        if self.value() == "active":
            return queryset.filter(expires_at__gt=now)
        if self.value() == "expired":
            return queryset.filter(expires_at__lte=now)
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
        left = obj.expires_at - timezone.now()
        return format_duration(left) if left > timedelta(0) else str(_("expired"))

    @display(description=_("HWID bound"), boolean=True)
    def hwid_bound(self, obj: Subscription) -> bool:
        return bool(obj.hwid_digest)

    @admin.action(description=_("Extend or shorten..."), permissions=["manage_users"])
    def adjust_subscriptions(self, request: HttpRequest, queryset: QuerySet[Subscription]
                             ) -> TemplateResponse | None:
        subscriptions = list(queryset.select_related("user", "product")[:ADJUST_MAX + 1])
        if len(subscriptions) > ADJUST_MAX:
            messages.error(request, _("Select at most %(max)s subscriptions.")
                           % {"max": ADJUST_MAX})
            return None
        form = AdjustForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            done = 0
            for subscription in subscriptions:
                try:
                    subscription_adjust(actor=_actor(request), subscription_id=subscription.pk,
                                        delta=form.delta(), reason=form.cleaned_data["reason"])
                    done += 1
                except ZspbError as exc:
                    messages.error(request, f"{subscription}: {exc.message}")
            if done:
                messages.success(request, _("%(count)s subscriptions changed.") % {"count": done})
            return None
        return _form_page(request, self, title=_("Extend or shorten subscriptions"), form=form,
                          objects=subscriptions, objects_title=_("Subscriptions"),
                          hidden=_action_hidden("adjust_subscriptions", subscriptions),
                          submit_label=_("Apply"),
                          cancel_url=reverse("admin:core_subscription_changelist"))

    @admin.action(description=_("Reset HWID binding"), permissions=["manage_users"])
    def reset_hwid(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        done = 0
        for subscription_id in queryset.values_list("pk", flat=True)[:ADJUST_MAX]:
            try:
                subscription_reset_hwid(actor=_actor(request), subscription_id=subscription_id)
                done += 1
            except ZspbError as exc:
                messages.error(request, f"#{subscription_id}: {exc.message}")
        if done:
            messages.success(request, _("HWID reset on %(count)s subscriptions.")
                             % {"count": done})


# --- Loader releases -------------------------------------------------------------------------

class ReleaseUploadForm(forms.Form):
    version = forms.CharField(label=_("Version"), max_length=32,
                              widget=UnfoldAdminTextInputWidget)
    file = forms.FileField(label=_("Loader file"), widget=UnfoldAdminFileFieldWidget)
    changelog = forms.CharField(label=_("Changelog"), required=False,
                                widget=UnfoldAdminTextareaWidget(attrs={"rows": 8}))

    def clean_file(self) -> Any:
        uploaded = self.cleaned_data["file"]
        limit = settings.LOADER_MAX_UPLOAD_MB * 1024 * 1024
        if uploaded.size > limit:
            raise forms.ValidationError(
                _("The file is %(size)s; the limit is %(limit)s (LOADER_MAX_UPLOAD_MB).")
                % {"size": filesizeformat(uploaded.size), "limit": filesizeformat(limit)})
        return uploaded


@admin.register(LoaderRelease)
class LoaderReleaseAdmin(CsvExportMixin, StaffModelAdmin):
    view_capability = None
    add_capability = "manage_loader"
    list_display = ["version", "published", "size_text", "sha256_short", "uploaded_by",
                    "created_at"]
    list_filter = ["published"]
    list_select_related = ["uploaded_by"]
    fields = ["version", "published", "file", "size_text", "sha256", "changelog", "uploaded_by",
              "created_at"]
    readonly_fields = fields
    actions = ["publish", "unpublish", "export_selected_csv"]
    csv_filename = "releases"
    csv_columns = [field_column("version"), field_column("published"), field_column("size"),
                   field_column("sha256"), field_column("uploaded_by_id"),
                   field_column("created_at")]

    def has_manage_loader_permission(self, request: HttpRequest) -> bool:
        return staff_can(request, "manage_loader")

    @display(description=_("size"), ordering="size")
    def size_text(self, obj: LoaderRelease) -> str:
        return filesizeformat(obj.size)

    @display(description="sha256")
    def sha256_short(self, obj: LoaderRelease) -> str:
        return f"{obj.sha256[:16]}..."

    def add_view(self, request: HttpRequest, form_url: str = "",
                 extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """Upload through release_create, which computes the sha256 and size from the bytes."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ReleaseUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                release = release_create(actor=_actor(request),
                                         uploaded_file=form.cleaned_data["file"],
                                         version=form.cleaned_data["version"],
                                         changelog=form.cleaned_data["changelog"])
            except ZspbError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, _("Release %(version)s uploaded (unpublished); "
                                            "sha256 %(sha)s.") % {"version": release.version,
                                                                  "sha": release.sha256})
                return HttpResponseRedirect(reverse("admin:core_loaderrelease_changelist"))
        return _form_page(request, self, title=_("Upload a loader release"), form=form,
                          submit_label=_("Upload"),
                          intro=_("Limit: %(mb)s MB. The release stays unpublished until you "
                                  "publish it.") % {"mb": settings.LOADER_MAX_UPLOAD_MB},
                          cancel_url=reverse("admin:core_loaderrelease_changelist"))

    def _publish(self, request: HttpRequest, queryset: QuerySet[LoaderRelease],
                 published: bool) -> None:
        for release_id in queryset.values_list("pk", flat=True):
            try:
                release = release_publish(actor=_actor(request), release_id=release_id,
                                          published=published)
            except ZspbError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, (_("%(version)s published.") if published
                                           else _("%(version)s withdrawn."))
                                 % {"version": release.version})

    @admin.action(description=_("Publish selected releases"), permissions=["manage_loader"])
    def publish(self, request: HttpRequest, queryset: QuerySet[LoaderRelease]) -> None:
        self._publish(request, queryset, True)

    @admin.action(description=_("Unpublish selected releases"), permissions=["manage_loader"])
    def unpublish(self, request: HttpRequest, queryset: QuerySet[LoaderRelease]) -> None:
        self._publish(request, queryset, False)

