"""Products: name, slug, active flag and Discord role, managed by those with manage_products.

Saved by core.services.products (journaled; a new Discord role or a (de)activation queues a
role sync for the product's members), called during the form's clean() so that a refusal
shows on the form.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from core.errors import ZspbError
from core.models import Product, User
from core.services.products import PRODUCT_FIELDS, product_create, product_update
from staff.base import StaffModelAdmin


class ProductForm(forms.ModelForm):
    actor: User

    class Meta:
        model = Product
        fields = list(PRODUCT_FIELDS)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        fields = {name: data.get(name) for name in PRODUCT_FIELDS if name in self.fields}
        try:
            if self.instance.pk:
                self.saved = product_update(actor=self.actor, product=self.instance,
                                            changes=fields)
            else:
                self.saved = product_create(actor=self.actor, fields=fields)
        except ZspbError as exc:
            field = next((name for name in (exc.details.get("fields") or {})
                          if name in self.fields), None)
            if field is None:
                raise ValidationError(exc.message) from exc
            self.add_error(field, exc.message)
        return data

    def _post_clean(self) -> None:
        # The service saved the product; model validation would now see its own row as a clash.
        if not hasattr(self, "saved"):
            super()._post_clean()  # type: ignore[misc]


@admin.register(Product)
class ProductAdmin(StaffModelAdmin):
    view_capability = None
    # No delete: keys and subscriptions refer to a product; it is deactivated instead.
    add_capability = change_capability = "manage_products"
    form = ProductForm
    list_display = ["name", "slug", "is_active", "discord_role_id", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ("name",)}
    fields = list(PRODUCT_FIELDS)

    def save_model(self, request: HttpRequest, obj: Product, form: Any, change: bool) -> None:
        # Saved by the service in the form's clean(); the admin goes on with the stored row.
        for field in Product._meta.concrete_fields:
            setattr(obj, field.attname, getattr(form.saved, field.attname))
