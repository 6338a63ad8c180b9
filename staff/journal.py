"""The three journals (user actions, moderation, system errors) as read-only admin views.

Each is a proxy of LogEntry restricted to its category. Every filter maps to an index of the
log table: (category, created_at), (actor, created_at), (target, created_at),
(action, created_at). Nobody, superusers included, can add, change or delete an entry.
An entry reads as a sentence (core.selectors.journal) with the people linked to their pages;
the raw data stays one click away in the row and on the entry's page.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _
from unfold.decorators import display

from core.models import LogEntry, ModerationEntry, SystemErrorEntry, UserActionEntry
from core.selectors.journal import JournalValues, journal_entry_description, journal_person
from staff.base import StaffModelAdmin, staff_can
from staff.changelist import DayRangeFilter, PrefixTextFilter, ScaledChangeListMixin, user_filter
from staff.csv_export import CsvColumn, CsvExportMixin, field_column

# The client IP of an entry is personal data: shown to those who manage users only.
IP_CAPABILITY = "manage_users"


class ActionFilter(PrefixTextFilter):
    title = _("action (exact, or a prefix ending with *)")
    parameter_name = "action"
    field = "action"


def _data_text(entry: LogEntry) -> str:
    return json.dumps(entry.data, ensure_ascii=False, sort_keys=True, default=str)


def _data_pretty(entry: LogEntry) -> str:
    return json.dumps(entry.data, ensure_ascii=False, sort_keys=True, indent=2, default=str)


def _person(site_name: str, user_id: int | None, name: str) -> SafeString:
    """The name as kept in the entry (it survives the account), linked while the account
    exists: the id is on the row already, so a link costs no query."""
    if user_id is None:
        return conditional_escape(journal_person(name))
    return format_html('<a href="{}" class="text-primary-600 dark:text-primary-500">{}</a>',
                       reverse(f"{site_name}:core_user_change", args=[user_id]),
                       journal_person(name))


def entry_sentence(entry: LogEntry, *, site_name: str) -> SafeString:
    """The entry's sentence as HTML (an unknown action: its code, in bold)."""
    description = journal_entry_description(entry=entry)
    values = JournalValues({key: conditional_escape(value)
                            for key, value in description.values.items()})
    if not description.known:
        values["action"] = format_html('<span class="font-medium">{}</span>', entry.action)
    values["actor"] = _person(site_name, entry.actor_id, entry.actor_name)
    values["target"] = _person(site_name, entry.target_id, entry.target_name)
    # Every value is escaped above and the template comes from the code's catalogue.
    return mark_safe(conditional_escape(description.template) % values)  # noqa: S308


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
    list_display = ["created_at", "description", "action"]
    list_display_links = ["created_at"]
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
        fields = ["created_at", "category", "sentence", "action", "actor", "actor_name",
                  "target", "target_name", "data_pretty"]
        return [*fields, "ip"] if staff_can(request, IP_CAPABILITY) else fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self.get_fields(request, obj)

    def get_csv_columns(self, request: HttpRequest) -> list[CsvColumn]:
        if staff_can(request, IP_CAPABILITY):
            return [*BASE_COLUMNS, field_column("ip")]
        return BASE_COLUMNS

    @display(description=_("what happened"))
    def description(self, obj: LogEntry) -> SafeString:
        """The sentence, and the raw data folded under it (one click away)."""
        return SafeString(render_to_string("staff/journal_entry.html", {
            "sentence": entry_sentence(obj, site_name=self.admin_site.name),
            "data": _data_pretty(obj) if obj.data else "",
        }))

    @display(description=_("what happened"))
    def sentence(self, obj: LogEntry) -> SafeString:
        return entry_sentence(obj, site_name=self.admin_site.name)

    @display(description=_("data"))
    def data_pretty(self, obj: LogEntry) -> str:
        return _data_pretty(obj)


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
