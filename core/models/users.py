from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext_lazy as _
from encrypted_model_fields.fields import EncryptedCharField

if TYPE_CHECKING:
    from core.models.roles import Role

# Superusers created from the shell outrank every role.
SUPERUSER_RANK = 1_000_000


class User(AbstractUser):
    role = models.ForeignKey(
        "core.Role", null=True, blank=True, on_delete=models.PROTECT, related_name="members",
        verbose_name=_("role"),
    )
    invited_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="invitees",
        verbose_name=_("invited by"),
    )
    discord_id = models.BigIntegerField(_("Discord ID"), null=True, blank=True, unique=True)
    discord_username = models.CharField(_("Discord name"), max_length=64, blank=True)
    discord_linked_at = models.DateTimeField(_("Discord linked"), null=True, blank=True)
    registration_ip_digest = models.CharField(_("registration IP digest"), max_length=64,
                                              blank=True, db_index=True)
    registration_ip = EncryptedCharField(verbose_name=_("registration IP"), max_length=64,
                                         blank=True)
    can_invite = models.BooleanField(_("may invite"), default=True)
    # Bumped to invalidate every session of the user at once (ban, password reset, "end
    # sessions"): it is mixed into the session auth hash that Django checks on each request.
    session_epoch = models.PositiveIntegerField(_("session epoch"), default=0)

    class Meta(AbstractUser.Meta):  # type: ignore[name-defined,misc]
        verbose_name = _("member")
        verbose_name_plural = _("members")
        indexes = [
            models.Index(fields=["date_joined"], name="user_date_joined_idx"),
            # The staff admin's "banned" filter: few rows, newest first, without a table scan.
            models.Index(fields=["date_joined"], condition=models.Q(is_active=False),
                         name="user_banned_idx"),
        ]

    @property
    def rank(self) -> int:
        if self.is_superuser:
            return SUPERUSER_RANK
        return self.role.rank if self.role_id and self.role else 0

    def can_act_on(self, target: User) -> bool:
        """The rank rule: nobody acts through staff tools on themselves or on anyone ranked
        at or above them. The one place it is written; services enforce it through
        core.services.access.ensure_outranks, the admin uses it to show rows read-only."""
        return self.pk != target.pk and target.rank < self.rank

    def can_grant(self, role: Role) -> bool:
        """Nobody grants a role at or above their own rank."""
        return role.rank < self.rank

    def has_capability(self, capability: str) -> bool:
        if not self.is_active:
            return False
        if self.is_superuser:
            return True
        return bool(self.role and self.role.has_capability(capability))

    def _get_session_auth_hash(self, secret: Any = None) -> str:
        key_salt = "core.User.session_auth_hash"
        value = f"{self.password}:{self.session_epoch}"
        return salted_hmac(key_salt, value, secret=secret, algorithm="sha256").hexdigest()
