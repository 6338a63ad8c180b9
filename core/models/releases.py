from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class LoaderRelease(models.Model):
    version = models.CharField(max_length=32, unique=True)
    file = models.FileField(upload_to="loader/")
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField()
    changelog = models.TextField(blank=True)
    published = models.BooleanField(default=False)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["published", "-created_at"], name="release_latest_idx")]

    def __str__(self) -> str:
        return self.version
