from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone
from encrypted_model_fields.fields import EncryptedCharField


class Product(models.Model):
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=50, unique=True)
    discord_role_id = models.BigIntegerField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class LicenseKey(models.Model):
    class Status(models.TextChoices):
        FREE = "free", "Free"
        REDEEMED = "redeemed", "Redeemed"
        REVOKED = "revoked", "Revoked"

    code_digest = models.CharField(max_length=64, unique=True)
    code = EncryptedCharField(max_length=64)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="keys")
    duration = models.DurationField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.FREE)
    batch = models.UUIDField(db_index=True)
    note = models.CharField(max_length=200, blank=True)
    redeem_by = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="keys_created",
    )
    created_at = models.DateTimeField(default=timezone.now)
    redeemed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="keys_redeemed",
    )
    redeemed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
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
        return f"Key #{self.pk} ({self.product_id}, {self.status})"
