from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from config.behaviour import CAPABILITIES


class Role(models.Model):
    key = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=64, unique=True)
    rank = models.PositiveIntegerField(unique=True)
    discord_role_id = models.BigIntegerField(null=True, blank=True)
    invite_quota = models.PositiveIntegerField(
        null=True, blank=True, help_text="Invites per calendar month; empty means unlimited."
    )
    staff = models.BooleanField(default=False, help_text="Members may enter the staff admin.")
    permissions = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["rank"]
        constraints = [
            models.CheckConstraint(condition=models.Q(rank__gte=1), name="role_rank_positive"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        perms = self.permissions
        if not isinstance(perms, list) or not set(perms) <= CAPABILITIES:
            raise ValidationError({"permissions": f"Allowed values: {sorted(CAPABILITIES)}"})

    def has_capability(self, capability: str) -> bool:
        return capability in (self.permissions or [])
