"""The three journals (user actions, moderation, system errors) as read-only admin views.

Each is a proxy of LogEntry restricted to its category. Every filter maps to an index of the
log table: (category, created_at), (actor, created_at), (target, created_at),
(action, created_at). Nobody, superusers included, can add, change or delete an entry.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from unfold.decorators import display

from core.models import LogEntry, ModerationEntry, SystemErrorEntry, UserActionEntry
from staff.base import StaffModelAdmin, staff_can
from staff.changelist import DayRangeFilter, PrefixTextFilter, ScaledChangeListMixin, user_filter
from staff.csv_export import CsvColumn, CsvExportMixin, field_column

SUMMARY_LENGTH = 120
# The client IP of an entry is personal data: shown to those who manage users only.
IP_CAPABILITY = "manage_users"


class ActionFilter(PrefixTextFilter):
    title = _("action (exact, or a prefix ending with *)")
    parameter_name = "action"
    field = "action"


def _data_text(entry: LogEntry) -> str:
    return json.dumps(entry.data, ensure_ascii=False, sort_keys=True, default=str)


BASE_COLUMNS = [
    field_column("id"),
    field_column("created_at"),
    field_column("category"),
    field_column("action"),
    field_column("actor_id"),
    field_column("actor_name"),
    field_column("target_id"),
    field_column("target_name"),
    CsvColumn("data", _data_text),
]


class JournalAdmin(CsvExportMixin, ScaledChangeListMixin, StaffModelAdmin):
    view_capability = "view_any_stats"
    list_display = ["created_at", "action", "actor_name", "target_name", "summary"]
    list_display_links = ["created_at", "action"]
    list_filter = [
        user_filter("actor", str(_("actor (id or username)"))),
        user_filter("target", str(_("target (id or username)"))),
        ActionFilter,
        ("created_at", DayRangeFilter),
    ]
    list_filter_submit = True
    ordering = ["-created_at", "-id"]
    actions = ["export_selected_csv"]
    csv_filename = "journal"
    category = ""  # the proxy model's journal

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).filter(category=self.category)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = ["created_at", "category", "action", "actor", "actor_name", "target",
                  "target_name", "data_pretty"]
        return [*fields, "ip"] if staff_can(request, IP_CAPABILITY) else fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self.get_fields(request, obj)

    def get_csv_columns(self, request: HttpRequest) -> list[CsvColumn]:
        if staff_can(request, IP_CAPABILITY):
            return [*BASE_COLUMNS, field_column("ip")]
        return BASE_COLUMNS

    @display(description=_("data"))
    def summary(self, obj: LogEntry) -> str:
        text = _data_text(obj)
        return text if len(text) <= SUMMARY_LENGTH else f"{text[:SUMMARY_LENGTH]}..."

    @display(description=_("data"))
    def data_pretty(self, obj: LogEntry) -> str:
        return json.dumps(obj.data, ensure_ascii=False, sort_keys=True, indent=2, default=str)


@admin.register(UserActionEntry)
class UserActionJournalAdmin(JournalAdmin):
    category = UserActionEntry.category_value
    csv_filename = "journal-user"


@admin.register(ModerationEntry)
class ModerationJournalAdmin(JournalAdmin):
    category = ModerationEntry.category_value
    csv_filename = "journal-moderation"


@admin.register(SystemErrorEntry)
class SystemErrorJournalAdmin(JournalAdmin):
    category = SystemErrorEntry.category_value
    csv_filename = "journal-errors"
