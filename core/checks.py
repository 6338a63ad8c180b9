from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Error as CheckError
from django.core.checks import Warning as CheckWarning
from django.db import DatabaseError


def discord_notice() -> str | None:
    """One line telling an operator that Discord is off, or None when it is configured."""
    if settings.DISCORD_ENABLED:
        return None
    return (
        "Discord features are off: DISCORD_BOT_TOKEN and DISCORD_GUILD_ID are not both set. "
        "The site works without them; role sync, /code linking and the bot stay disabled."
    )


@register(Tags.security, deploy=True)
def discord_configured(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    notice = discord_notice()
    return [CheckWarning(notice, id="zspb.W001")] if notice else []


@register(Tags.database)
def encryption_key_matches(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    from core.models import EncryptionCanary

    try:
        canary = EncryptionCanary.objects.first()
    except DatabaseError:
        return []  # not migrated yet
    if canary is None or canary.decrypts():
        return []
    return [
        CheckError(
            "FIELD_ENCRYPTION_KEY cannot decrypt data already in the database: encrypted fields "
            "would show ciphertext. Put the key that was used before back in the list.",
            id="zspb.E001",
        )
    ]
