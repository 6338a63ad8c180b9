from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _
from encrypted_model_fields.fields import EncryptedCharField


class InviteQuerySet(models.QuerySet["Invite"]):
    """Usable: active and not past its expiry. Expired: still active but past it (nothing
    rewrites the status when an invite expires)."""

    def usable(self, now: datetime | None = None) -> InviteQuerySet:
        return self.filter(status=Invite.Status.ACTIVE, expires_at__gt=now or timezone.now())

    def expired(self, now: datetime | None = None) -> InviteQuerySet:
        return self.filter(status=Invite.Status.ACTIVE, expires_at__lte=now or timezone.now())


class Invite(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", pgettext_lazy("invite", "Active")
        USED = "used", pgettext_lazy("invite", "Used")
        REVOKED = "revoked", pgettext_lazy("invite", "Revoked")

    code_digest = models.CharField(_("code digest"), max_length=64, unique=True)
    code = EncryptedCharField(verbose_name=_("code"), max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="invites_created",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires"))
    status = models.CharField(_("status"), max_length=8, choices=Status.choices,
                              default=Status.ACTIVE)
    used_by = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="invite_used",
        verbose_name=_("used by"),
    )
    used_at = models.DateTimeField(_("used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    objects = InviteQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("invite")
        verbose_name_plural = _("invites")
        indexes = [
            models.Index(fields=["created_by", "created_at"], name="invite_creator_month_idx"),
            models.Index(fields=["status", "expires_at"], name="invite_status_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status="used", used_at__isnull=False)
                | ~models.Q(status="used"),
                name="invite_used_has_time",
            ),
            models.CheckConstraint(
                condition=models.Q(expires_at__gt=models.F("created_at")),
                name="invite_expires_after_creation",
            ),
        ]

    def __str__(self) -> str:
        return gettext("Invite #%(id)s by member %(user)s") % {"id": self.pk,
                                                                "user": self.created_by_id}

    def is_usable(self, at: datetime | None = None) -> bool:
        return self.status == self.Status.ACTIVE and self.expires_at > (at or timezone.now())

    @property
    def effective_status(self) -> str:
        """The status as a member sees it: an active invite past its expiry is "expired"."""
        if self.status == self.Status.ACTIVE and not self.is_usable():
            return "expired"
        return str(self.status)
