from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class LicenseCheckDay(models.Model):
    """Successful licence checks of one subscription on one day (the site's time zone).

    A success is not journaled one row each: it is counted in Redis and added here every minute
    by core.services.licence_counts (refusals are still journaled one by one). `flush_batch`
    names the last Redis batch added to the row, so a flush that is run again after dying
    half-way does not add the same batch twice.
    """

    subscription = models.ForeignKey("core.Subscription", on_delete=models.CASCADE,
                                     related_name="+", verbose_name=_("subscription"))
    day = models.DateField(_("day"))
    count = models.PositiveBigIntegerField(_("successful checks"), default=0)
    last_checked_at = models.DateTimeField(_("last check"), default=timezone.now)
    flush_batch = models.CharField(_("flush batch"), max_length=32, blank=True, editable=False)

    class Meta:
        ordering = ["-day", "-count"]
        verbose_name = _("licence checks of a day")
        verbose_name_plural = _("licence checks per day")
        constraints = [models.UniqueConstraint(fields=["subscription", "day"],
                                               name="licensecheckday_unique")]
        indexes = [models.Index(fields=["-day", "-count"], name="licensecheckday_day_idx")]

    def __str__(self) -> str:
        return f"subscription {self.subscription_id} on {self.day}: {self.count}"
