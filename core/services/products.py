"""Products: created and edited by staff who hold manage_products, journaled with before/after.

A product's Discord role goes to every linked member with an active subscription to it, so a
change of that role or of the active flag queues a role sync for those members.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import transaction
from django.utils.translation import gettext as _

from core.errors import Conflict, InvalidInput
from core.models import Product, Subscription, User
from core.selectors.discord import SNOWFLAKE_MAX
from core.services.access import ensure_capability
from core.services.logs import Category, log_event
from core.services.rolesync import role_sync_request_members

PRODUCT_FIELDS = ("name", "slug", "is_active", "discord_role_id")
# Fields whose change alters the Discord roles members of the product should hold.
SYNC_FIELDS = frozenset({"is_active", "discord_role_id"})


def _validate(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - set(PRODUCT_FIELDS)
    if unknown:
        raise InvalidInput(_("Unknown product fields: %(fields)s.")
                           % {"fields": ", ".join(sorted(unknown))})
    cleaned = dict(fields)
    if "name" in cleaned:
        cleaned["name"] = str(cleaned["name"] or "").strip()
        if not cleaned["name"] or len(cleaned["name"]) > 100:
            raise InvalidInput(_("A product needs a name of at most 100 characters."),
                               fields={"name": "invalid"})
    if "slug" in cleaned:
        slug = str(cleaned["slug"] or "").strip()
        try:
            validate_slug(slug)
        except ValidationError:
            slug = ""
        if not slug or len(slug) > 50:
            raise InvalidInput(_("The slug is letters, digits, dashes and underscores (at most "
                                 "50)."), fields={"slug": "invalid"})
        cleaned["slug"] = slug
    if "is_active" in cleaned:
        cleaned["is_active"] = bool(cleaned["is_active"])
    if cleaned.get("discord_role_id") is not None:
        role_id = cleaned["discord_role_id"]
        if not isinstance(role_id, int) or not 1 <= role_id <= SNOWFLAKE_MAX:
            raise InvalidInput(_("The Discord role is a role id (digits) or empty."),
                               fields={"discord_role_id": "invalid"})
    return cleaned


def _clash(*, fields: dict[str, Any], exclude: int | None) -> None:
    others = Product.objects.exclude(pk=exclude) if exclude else Product.objects.all()
    if "name" in fields and others.filter(name=fields["name"]).exists():
        raise Conflict(_("Another product has this name."), fields={"name": "taken"})
    if "slug" in fields and others.filter(slug=fields["slug"]).exists():
        raise Conflict(_("Another product has this slug."), fields={"slug": "taken"})


def product_create(*, actor: User, fields: dict[str, Any]) -> Product:
    ensure_capability(actor, "manage_products")
    fields = _validate(fields)
    if not fields.get("name") or not fields.get("slug"):
        raise InvalidInput(_("A new product needs a name and a slug."))
    with transaction.atomic():
        _clash(fields=fields, exclude=None)
        product = Product.objects.create(**fields)
        log_event(category=Category.MODERATION, action="product.create", actor=actor,
                  data={"product_id": product.pk, "slug": product.slug,
                        "after": {f: getattr(product, f) for f in PRODUCT_FIELDS}})
    return product


def product_update(*, actor: User, product: Product, changes: dict[str, Any]) -> Product:
    """Edit a product; members holding it get their Discord roles re-synced when its role or
    its active flag changes. Nothing changed, nothing journaled."""
    ensure_capability(actor, "manage_products")
    changes = _validate(changes)
    with transaction.atomic():
        current = Product.objects.select_for_update().get(pk=product.pk)
        diff = {f: v for f, v in changes.items() if getattr(current, f) != v}
        if not diff:
            return current
        _clash(fields=diff, exclude=current.pk)
        before = {f: getattr(current, f) for f in diff}
        for name, value in diff.items():
            setattr(current, name, value)
        current.save(update_fields=list(diff))
        queued = 0
        if SYNC_FIELDS & set(diff):
            queued = role_sync_request_members(
                users=User.objects.filter(
                    pk__in=Subscription.objects.active().filter(product=current)
                    .values("user_id")),
                reason="product_edit")
        log_event(category=Category.MODERATION, action="product.update", actor=actor,
                  data={"product_id": current.pk, "slug": current.slug,
                        "changed": sorted(diff), "before": before, "after": diff,
                        "syncs_queued": queued})
    return current
