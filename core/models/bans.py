from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Ban(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="bans")
    reason = models.CharField(max_length=500)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="bans_issued"
    )
    created_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Empty means permanent.")
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="bans_lifted",
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user"], condition=models.Q(lifted_at__isnull=True),
                name="ban_one_open_per_user",
            ),
            models.CheckConstraint(
                condition=models.Q(ends_at__isnull=True)
                | models.Q(ends_at__gt=models.F("created_at")),
                name="ban_ends_after_start",
            ),
        ]
        indexes = [models.Index(fields=["lifted_at", "ends_at"], name="ban_open_idx")]

    def __str__(self) -> str:
        return f"Ban of {self.user_id}"

    @property
    def is_active(self) -> bool:
        return self.lifted_at is None and (self.ends_at is None or self.ends_at > timezone.now())
