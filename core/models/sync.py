from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class RoleSyncRequest(models.Model):
    """Outbox row: this member's Discord roles must be converged to the site's wanted set.

    Written in the same transaction as the change that caused it, so a crash or a Discord
    outage loses nothing; coalesced to one row per user, since a drain applies the user's
    *current* wanted roles whatever the reason. A drainer must delete a row only if its
    `requested_at` is still the one it read: a newer request for the same user updates the
    row meanwhile and would otherwise be lost.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="role_sync_request",
        verbose_name=_("member"),
    )
    reason = models.CharField(_("reason"), max_length=64,
                              help_text=_("What last asked for a sync."))
    requested_at = models.DateTimeField(_("requested"), default=timezone.now)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    not_before = models.DateTimeField(
        _("not before"), default=timezone.now,
        help_text=_("Back-off: not retried before this time."),
    )

    class Meta:
        ordering = ["requested_at", "id"]
        verbose_name = _("Discord role sync request")
        verbose_name_plural = _("Discord role sync requests")
        indexes = [
            # The drain takes due rows oldest first: WHERE not_before <= now ORDER BY requested_at.
            models.Index(fields=["not_before", "requested_at"], name="rolesync_drain_idx"),
        ]

    def __str__(self) -> str:
        return f"Role sync for {self.user_id} ({self.reason})"
