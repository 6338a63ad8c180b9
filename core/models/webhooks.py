from __future__ import annotations

from django.db import models
from django.utils import timezone

from core.models.logs import LogEntry


class WebhookOutbox(models.Model):
    """A journal line waiting to be posted to its journal's Discord webhook.

    Written by log_event in the same transaction as the entry (only while the journal has a
    webhook URL), so a request never waits on Discord and a line is never posted for an entry
    that rolled back. The delivery task packs several lines per message and deletes the rows it
    posted.
    """

    entry = models.ForeignKey(LogEntry, on_delete=models.CASCADE, related_name="+")
    journal = models.CharField(max_length=10, choices=LogEntry.Category.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["journal", "id"], name="webhook_outbox_idx")]

    def __str__(self) -> str:
        return f"[{self.journal}] entry {self.entry_id}"


class WebhookState(models.Model):
    """Delivery state of one journal's webhook: back-off after failures, or disabled.

    A webhook that answers 404 (deleted in Discord) or 401 (bad token) is disabled for the URL
    it had, identified by a keyed digest so the URL's token is not stored twice; configuring
    another URL enables delivery again.
    """

    journal = models.CharField(max_length=10, choices=LogEntry.Category.choices, unique=True)
    url_digest = models.CharField(max_length=64, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    failures = models.PositiveIntegerField(default=0)
    not_before = models.DateTimeField(default=timezone.now)
    last_error = models.CharField(max_length=200, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["journal"]

    def __str__(self) -> str:
        state = "disabled" if self.disabled_at else "enabled"
        return f"{self.journal} webhook ({state})"
