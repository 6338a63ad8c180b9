from __future__ import annotations

from django.contrib import admin
from unfold.admin import ModelAdmin

from core.models import LicenseKey, LoaderRelease, Product, Subscription


@admin.register(Product)
class ProductAdmin(ModelAdmin):
    list_display = ["name", "slug", "is_active", "discord_role_id"]
    prepopulated_fields = {"slug": ("name",)}


@admin.register(LicenseKey)
class LicenseKeyAdmin(ModelAdmin):
    list_display = ["id", "product", "status", "duration", "created_at", "redeemed_by"]
    list_filter = ["status", "product"]
    list_select_related = ["product", "redeemed_by"]
    raw_id_fields = ["created_by", "redeemed_by"]
    exclude = ["code_digest"]
    show_full_result_count = False


@admin.register(Subscription)
class SubscriptionAdmin(ModelAdmin):
    list_display = ["user", "product", "started_at", "expires_at"]
    list_select_related = ["user", "product"]
    raw_id_fields = ["user"]


@admin.register(LoaderRelease)
class LoaderReleaseAdmin(ModelAdmin):
    list_display = ["version", "published", "size", "created_at"]
    readonly_fields = ["sha256", "size"]
