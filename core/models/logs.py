from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from encrypted_model_fields.fields import EncryptedCharField


class LogEntry(models.Model):
    class Category(models.TextChoices):
        USER = "user", "User actions"
        MODERATION = "moderation", "Moderation"
        ERROR = "error", "System errors"

    category = models.CharField(max_length=10, choices=Category.choices)
    action = models.CharField(max_length=64)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    target = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    # Names survive deletion of the account, so the journal stays readable.
    actor_name = models.CharField(max_length=150, blank=True)
    target_name = models.CharField(max_length=150, blank=True)
    data = models.JSONField(default=dict, blank=True)
    ip_digest = models.CharField(max_length=64, blank=True)
    ip = EncryptedCharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "log entries"
        indexes = [
            models.Index(fields=["category", "-created_at"], name="log_category_idx"),
            models.Index(fields=["actor", "-created_at"], name="log_actor_idx"),
            models.Index(fields=["target", "-created_at"], name="log_target_idx"),
            models.Index(fields=["action", "-created_at"], name="log_action_idx"),
            models.Index(fields=["ip_digest"], name="log_ip_idx"),
        ]

    def __str__(self) -> str:
        return f"[{self.category}] {self.action}"


class UserActionEntry(LogEntry):
    """The user-actions journal: a read-only admin view of LogEntry rows of its category."""

    category_value = LogEntry.Category.USER

    class Meta:
        proxy = True
        verbose_name = "user action"
        verbose_name_plural = "journal: user actions"


class ModerationEntry(LogEntry):
    category_value = LogEntry.Category.MODERATION

    class Meta:
        proxy = True
        verbose_name = "moderation entry"
        verbose_name_plural = "journal: moderation"


class SystemErrorEntry(LogEntry):
    category_value = LogEntry.Category.ERROR

    class Meta:
        proxy = True
        verbose_name = "system error"
        verbose_name_plural = "journal: system errors"
