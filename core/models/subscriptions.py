from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class Subscription(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="subscriptions"
    )
    product = models.ForeignKey("core.Product", on_delete=models.PROTECT,
                                related_name="subscriptions")
    started_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    hwid_digest = models.CharField(max_length=64, blank=True)
    # When the member last unbound the machine themselves (the cooldown counts from here).
    hwid_self_reset_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["expires_at"]
        constraints = [
            models.UniqueConstraint(fields=["user", "product"], name="subscription_unique"),
        ]
        indexes = [models.Index(fields=["expires_at"], name="subscription_expiry_idx")]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.product_id} until {self.expires_at:%Y-%m-%d %H:%M}"

    @property
    def is_active(self) -> bool:
        return self.expires_at > timezone.now()

    def hwid_self_reset_available_at(self, cooldown: timedelta,
                                     now: datetime | None = None) -> datetime | None:
        """When the member may next unbind the machine themselves; None means now."""
        if self.hwid_self_reset_at is None:
            return None
        at = self.hwid_self_reset_at + cooldown
        return at if at > (now or timezone.now()) else None
