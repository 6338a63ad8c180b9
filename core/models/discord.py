from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class DiscordLinkCode(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", pgettext_lazy("link code", "Pending")
        USED = "used", pgettext_lazy("link code", "Used")
        VOID = "void", pgettext_lazy("link code", "Replaced")

    discord_id = models.BigIntegerField(_("Discord ID"), db_index=True)
    discord_username = models.CharField(_("Discord name"), max_length=64, blank=True)
    # Only the digest is stored: the code is shown once, in an ephemeral Discord reply.
    code_digest = models.CharField(_("code digest"), max_length=64, unique=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires"))
    status = models.CharField(_("status"), max_length=8, choices=Status.choices,
                              default=Status.PENDING)
    used_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        verbose_name=_("used by"),
    )
    used_at = models.DateTimeField(_("used"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("Discord link code")
        verbose_name_plural = _("Discord link codes")
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
