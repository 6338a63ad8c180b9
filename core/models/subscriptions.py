from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _


class SubscriptionQuerySet(models.QuerySet["Subscription"]):
    """The one definition of an active subscription: it ends strictly after `now`."""

    def active(self, now: datetime | None = None) -> SubscriptionQuerySet:
        return self.filter(expires_at__gt=now or timezone.now())

    def expired(self, now: datetime | None = None) -> SubscriptionQuerySet:
        return self.filter(expires_at__lte=now or timezone.now())

    def ended_between(self, since: datetime, until: datetime) -> SubscriptionQuerySet:
        """Ended after `since` and by `until`: what a periodic job has not seen end yet."""
        return self.filter(expires_at__gt=since, expires_at__lte=until)


class Subscription(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="subscriptions",
        verbose_name=_("member"),
    )
    product = models.ForeignKey("core.Product", on_delete=models.PROTECT,
                                related_name="subscriptions", verbose_name=_("product"))
    started_at = models.DateTimeField(_("started"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires"))
    hwid_digest = models.CharField(_("HWID digest"), max_length=64, blank=True)
    # When the member last unbound the machine themselves (the cooldown counts from here).
    hwid_self_reset_at = models.DateTimeField(_("last self-service HWID reset"), null=True,
                                              blank=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = SubscriptionQuerySet.as_manager()

    class Meta:
        ordering = ["expires_at"]
        verbose_name = _("subscription")
        verbose_name_plural = _("subscriptions")
        constraints = [
            models.UniqueConstraint(fields=["user", "product"], name="subscription_unique"),
        ]
        indexes = [models.Index(fields=["expires_at"], name="subscription_expiry_idx")]

    def __str__(self) -> str:
        return gettext("Member %(user)s, product %(product)s, until %(date)s") % {
            "user": self.user_id, "product": self.product_id,
            "date": f"{self.expires_at:%Y-%m-%d %H:%M}"}

    @property
    def is_active(self) -> bool:
        return self.active_at()

    def active_at(self, now: datetime | None = None) -> bool:
        return self.expires_at > (now or timezone.now())

    def hwid_self_reset_available_at(self, cooldown: timedelta,
                                     now: datetime | None = None) -> datetime | None:
        """When the member may next unbind the machine themselves; None means now."""
        if self.hwid_self_reset_at is None:
            return None
        at = self.hwid_self_reset_at + cooldown
        return at if at > (now or timezone.now()) else None
