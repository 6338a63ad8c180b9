from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _


class BanQuerySet(models.QuerySet["Ban"]):
    """Open: not lifted (at most one per user). Active: open and not past its end. Elapsed:
    open but past its end, waiting for the expiry job to lift it."""

    def open(self) -> BanQuerySet:
        return self.filter(lifted_at__isnull=True)

    def active(self, now: datetime | None = None) -> BanQuerySet:
        return self.open().filter(models.Q(ends_at__isnull=True)
                                  | models.Q(ends_at__gt=now or timezone.now()))

    @staticmethod
    def active_sql(alias: str) -> str:
        """active() as an SQL condition on the ban table aliased `alias`, for statements
        written in SQL (core.selectors.stats); its parameter is %(now)s. A test holds the two
        to the same rows."""
        return (f"{alias}.lifted_at IS NULL "
                f"AND ({alias}.ends_at IS NULL OR {alias}.ends_at > %(now)s)")

    def elapsed(self, now: datetime | None = None) -> BanQuerySet:
        return self.open().filter(ends_at__lte=now or timezone.now())


class Ban(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="bans", verbose_name=_("member"))
    reason = models.CharField(_("reason"), max_length=500)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="bans_issued",
        verbose_name=_("author"),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    ends_at = models.DateTimeField(_("ends"), null=True, blank=True,
                                   help_text=_("Empty means permanent."))
    lifted_at = models.DateTimeField(_("lifted"), null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="bans_lifted",
        verbose_name=_("lifted by"),
    )

    objects = BanQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("ban")
        verbose_name_plural = _("bans")
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
        return gettext("Ban of member %(user)s") % {"user": self.user_id}

    @property
    def is_active(self) -> bool:
        return self.active_at()

    def active_at(self, now: datetime | None = None) -> bool:
        return self.lifted_at is None and (self.ends_at is None
                                           or self.ends_at > (now or timezone.now()))
