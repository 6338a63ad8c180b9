from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.models.logs import LogEntry


class WebhookOutbox(models.Model):
    """A journal line waiting to be posted to its journal's Discord webhook.

    Written by log_event in the same transaction as the entry (only while the journal has a
    webhook URL), so a request never waits on Discord and a line is never posted for an entry
    that rolled back. The delivery task packs several lines per message and deletes the rows it
    posted. `posting_at` is set, and committed, just before a row's message is sent: a row
    still marked when the next delivery starts belonged to a delivery that died (or got no
    answer) after sending, so it is never sent again (see core/services/webhooks.py).
    """

    entry = models.ForeignKey(LogEntry, on_delete=models.CASCADE, related_name="+",
                              verbose_name=_("journal entry"))
    journal = models.CharField(_("journal"), max_length=10, choices=LogEntry.Category.choices)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    posting_at = models.DateTimeField(_("posting started"), null=True, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("webhook outbox entry")
        verbose_name_plural = _("webhook outbox")
        indexes = [models.Index(fields=["journal", "id"], name="webhook_outbox_idx")]

    def __str__(self) -> str:
        return f"[{self.journal}] entry {self.entry_id}"


class WebhookState(models.Model):
    """Delivery state of one journal's webhook: back-off after failures, or disabled.

    A webhook that answers 404 (deleted in Discord) or 401 (bad token) is disabled for the URL
    it had, identified by a keyed digest so the URL's token is not stored twice; configuring
    another URL enables delivery again.
    """

    journal = models.CharField(_("journal"), max_length=10, choices=LogEntry.Category.choices,
                               unique=True)
    url_digest = models.CharField(_("URL digest"), max_length=64, blank=True)
    disabled_at = models.DateTimeField(_("disabled"), null=True, blank=True)
    disabled_reason = models.CharField(_("reason disabled"), max_length=200, blank=True)
    failures = models.PositiveIntegerField(_("failures"), default=0)
    not_before = models.DateTimeField(_("not before"), default=timezone.now)
    last_error = models.CharField(_("last error"), max_length=200, blank=True)
    delivered_at = models.DateTimeField(_("last delivered"), null=True, blank=True)

    class Meta:
        ordering = ["journal"]
        verbose_name = _("webhook state")
        verbose_name_plural = _("webhook states")

    def __str__(self) -> str:
        state = "disabled" if self.disabled_at else "enabled"
        return f"{self.journal} webhook ({state})"
