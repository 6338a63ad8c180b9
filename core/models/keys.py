from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _
from encrypted_model_fields.fields import EncryptedCharField


class Product(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)
    slug = models.SlugField(_("slug"), max_length=50, unique=True)
    discord_role_id = models.BigIntegerField(_("Discord role ID"), null=True, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name = _("product")
        verbose_name_plural = _("products")

    def __str__(self) -> str:
        return self.name


class LicenseKey(models.Model):
    class Status(models.TextChoices):
        FREE = "free", pgettext_lazy("key", "Free")
        REDEEMED = "redeemed", pgettext_lazy("key", "Redeemed")
        REVOKED = "revoked", pgettext_lazy("key", "Revoked")

    # Unique through Meta.constraints: a unique=True CharField also gets a LIKE index on
    # PostgreSQL, of no use for digests (only ever compared whole).
    code_digest = models.CharField(_("code digest"), max_length=64)
    code = EncryptedCharField(verbose_name=_("code"), max_length=64)
    # Indexed as the first column of key_product_status_idx (likewise created_by, redeemed_by).
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="keys",
                                verbose_name=_("product"), db_index=False)
    duration = models.DurationField(_("duration"))
    status = models.CharField(_("status"), max_length=8, choices=Status.choices,
                              default=Status.FREE)
    batch = models.UUIDField(_("batch"), db_index=True)
    note = models.CharField(_("note"), max_length=200, blank=True)
    redeem_by = models.DateTimeField(_("redeem by"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="keys_created",
        verbose_name=_("created by"),
        db_index=False,
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    redeemed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="keys_redeemed",
        verbose_name=_("redeemed by"),
        db_index=False,
    )
    redeemed_at = models.DateTimeField(_("redeemed"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("key")
        verbose_name_plural = _("keys")
        indexes = [
            models.Index(fields=["product", "status"], name="key_product_status_idx"),
            models.Index(fields=["status", "-created_at"], name="key_status_created_idx"),
            models.Index(fields=["created_by", "-created_at"], name="key_creator_idx"),
            models.Index(fields=["redeemed_by"], name="key_redeemer_idx"),
            # The dashboard's redemptions per day; free keys (most rows) stay out of it.
            models.Index(fields=["redeemed_at"], condition=models.Q(redeemed_at__isnull=False),
                         name="key_redeemed_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["code_digest"], name="key_code_digest_unique"),
            models.CheckConstraint(
                condition=models.Q(duration__gt=timedelta(0)),
                name="key_duration_positive",
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(status="redeemed", redeemed_at__isnull=False)
                    | (~models.Q(status="redeemed") & models.Q(redeemed_at__isnull=True))
                ),
                name="key_redeemed_consistent",
            ),
        ]

    def __str__(self) -> str:
        return gettext("Key #%(id)s (product %(product)s, %(status)s)") % {
            "id": self.pk, "product": self.product_id, "status": self.get_status_display()}
