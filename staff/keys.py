"""Licence keys: the list (codes shown only to those who may see them), search by exact code,
revocation, CSV export, and the generation pages (staff/keygen.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from unfold.decorators import action, display

from core.errors import ZspbError
from core.models import LicenseKey, Subscription
from core.services.keys import (
    REVOKE_MAX,
    key_codes_visible,
    key_lookup_digest,
    key_revoke,
    keys_export,
)
from staff import keygen
from staff.actions import actor_of
from staff.base import StaffModelAdmin, staff_can
from staff.changelist import ScaledChangeListMixin, UUIDFilter, user_filter
from staff.csv_export import CsvColumn, CsvExportMixin, csv_of, field_column
from staff.keygen import format_duration


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

    class Media:
        js = ["staff/js/countdown.js"]

    def has_generate_keys_permission(self, request: HttpRequest) -> bool:
        return staff_can(request, "generate_keys")

    def has_manage_keys_permission(self, request: HttpRequest) -> bool:
        return staff_can(request, "manage_keys")

    def _codes_visible(self, request: HttpRequest) -> bool:
        return key_codes_visible(actor_of(request))

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
        """A redeemed key counts down live (staff/js/countdown.js, on the server's clock);
        the text is what shows before the script runs."""
        now = timezone.now()
        expires = getattr(obj, "subscription_expires_at", None)
        if obj.status != LicenseKey.Status.REDEEMED or expires is None:
            return key_term(obj, now)
        return format_html(
            '<span class="staff-countdown" data-expires="{}" data-now="{}" data-units="{}" '
            'data-expired="{}">{}</span>', expires.isoformat(), now.isoformat(),
            # Translators: the units of a countdown (days, hours, minutes, seconds), comma
            # separated, e.g. "3d 04h 05m 06s".
            _("d,h,m,s"), _("expired"), key_term(obj, now))

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
            revoked = key_revoke(actor=actor_of(request), key_ids=ids)
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
        export = keys_export(actor=actor_of(request), keys=queryset, scope=scope)
        columns = KEY_COLUMNS[:1] + ([CsvColumn("code", lambda key: key.code)]
                                     if export.with_codes else []) + KEY_COLUMNS[1:]
        return csv_of(filename=self.csv_export_filename(), columns=columns, objects=export.keys)

    def get_urls(self) -> list[URLPattern]:
        return keygen.urls(self) + super().get_urls()

