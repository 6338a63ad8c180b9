from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _
from encrypted_model_fields.fields import EncryptedCharField

CANARY_PLAINTEXT = "zalypaspb-encryption-canary"


class EncryptionCanary(models.Model):
    """A known value encrypted at migrate time.

    A wrong FIELD_ENCRYPTION_KEY does not raise: the library hands back ciphertext. Reading this
    row back at start-up (`check --database default`) turns that silent failure into an error.
    """

    value = EncryptedCharField(verbose_name=_("value"), max_length=64)

    class Meta:
        verbose_name = _("encryption canary")
        verbose_name_plural = _("encryption canaries")

    def __str__(self) -> str:
        return "encryption canary"

    def decrypts(self) -> bool:
        return bool(self.value == CANARY_PLAINTEXT)
