from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class LoaderRelease(models.Model):
    version = models.CharField(_("version"), max_length=32, unique=True)
    file = models.FileField(_("file"), upload_to="loader/")
    sha256 = models.CharField("sha256", max_length=64)
    size = models.PositiveBigIntegerField(_("size"))
    changelog = models.TextField(_("changelog"), blank=True)
    published = models.BooleanField(_("published"), default=False)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("uploaded by"),
    )
    created_at = models.DateTimeField(_("uploaded"), default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("loader release")
        verbose_name_plural = _("loader releases")
        indexes = [models.Index(fields=["published", "-created_at"], name="release_latest_idx")]

    def __str__(self) -> str:
        return self.version
