from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from unfold.admin import ModelAdmin

from core.models import LogEntry


@admin.register(LogEntry)
class LogEntryAdmin(ModelAdmin):
    list_display = ["created_at", "category", "action", "actor_name", "target_name"]
    list_filter = ["category"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
