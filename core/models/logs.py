from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from encrypted_model_fields.fields import EncryptedCharField


class LogEntry(models.Model):
    class Category(models.TextChoices):
        USER = "user", _("User actions")
        MODERATION = "moderation", _("Moderation")
        ERROR = "error", _("System errors")

    category = models.CharField(_("journal"), max_length=10, choices=Category.choices)
    action = models.CharField(_("action"), max_length=64)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", verbose_name=_("actor"),
    )
    target = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", verbose_name=_("target"),
    )
    # Names survive deletion of the account, so the journal stays readable.
    actor_name = models.CharField(_("actor name"), max_length=150, blank=True)
    target_name = models.CharField(_("target name"), max_length=150, blank=True)
    data = models.JSONField(_("data"), default=dict, blank=True)
    ip_digest = models.CharField(_("IP digest"), max_length=64, blank=True)
    ip = EncryptedCharField(verbose_name=_("IP address"), max_length=64, blank=True)
    created_at = models.DateTimeField(_("time"), default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("log entry")
        verbose_name_plural = _("log entries")
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
        verbose_name = _("user action")
        verbose_name_plural = _("journal: user actions")


class ModerationEntry(LogEntry):
    category_value = LogEntry.Category.MODERATION

    class Meta:
        proxy = True
        verbose_name = _("moderation entry")
        verbose_name_plural = _("journal: moderation")


class SystemErrorEntry(LogEntry):
    category_value = LogEntry.Category.ERROR

    class Meta:
        proxy = True
        verbose_name = _("system error")
        verbose_name_plural = _("journal: system errors")
