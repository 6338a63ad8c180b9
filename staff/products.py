"""Products: name, slug, active flag and Discord role, managed by those with manage_products."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from core.models import Product
from core.services.logs import Category, log_event
from staff.actions import actor_of
from staff.base import StaffModelAdmin


@admin.register(Product)
class ProductAdmin(StaffModelAdmin):
    view_capability = None
    # No delete: keys and subscriptions refer to a product; it is deactivated instead.
    add_capability = change_capability = "manage_products"
    list_display = ["name", "slug", "is_active", "discord_role_id", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ("name",)}
    fields = ["name", "slug", "is_active", "discord_role_id"]

    def save_model(self, request: HttpRequest, obj: Product, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        log_event(category=Category.MODERATION,
                  action="product.update" if change else "product.create", actor=actor_of(request),
                  data={"product_id": obj.pk, "slug": obj.slug,
                        "changed": list(form.changed_data)})
