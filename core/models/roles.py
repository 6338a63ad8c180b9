from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from config.behaviour import CAPABILITIES


class Role(models.Model):
    key = models.SlugField(_("key"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=64, unique=True)
    rank = models.PositiveIntegerField(_("rank"), unique=True)
    discord_role_id = models.BigIntegerField(_("Discord role ID"), null=True, blank=True)
    invite_quota = models.PositiveIntegerField(
        _("invite quota"), null=True, blank=True,
        help_text=_("Invites per calendar month; empty means unlimited."),
    )
    staff = models.BooleanField(_("staff"), default=False,
                                help_text=_("Members may enter the staff admin."))
    permissions = models.JSONField(_("permissions"), default=list, blank=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["rank"]
        verbose_name = _("role")
        verbose_name_plural = _("roles")
        constraints = [
            models.CheckConstraint(condition=models.Q(rank__gte=1), name="role_rank_positive"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        perms = self.permissions
        if not isinstance(perms, list) or not set(perms) <= CAPABILITIES:
            raise ValidationError({"permissions": _("Allowed values: %(values)s") % {
                "values": ", ".join(sorted(CAPABILITIES))}})

    def has_capability(self, capability: str) -> bool:
        return capability in (self.permissions or [])
