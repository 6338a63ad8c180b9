from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class DiscordLinkCode(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        USED = "used", "Used"
        VOID = "void", "Replaced"

    discord_id = models.BigIntegerField(db_index=True)
    discord_username = models.CharField(max_length=64, blank=True)
    # Only the digest is stored: the code is shown once, in an ephemeral Discord reply.
    code_digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    used_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # A new code voids the old one, so at most one code per Discord account is pending.
            models.UniqueConstraint(
                fields=["discord_id"],
                condition=models.Q(status="pending"),
                name="linkcode_one_pending_per_discord",
            ),
        ]

    def __str__(self) -> str:
        return f"Link code for {self.discord_id} ({self.status})"
