from __future__ import annotations

from typing import Any

from django.db import migrations

CANARY_PLAINTEXT = "zalypaspb-encryption-canary"


def create_canary(apps: Any, schema_editor: Any) -> None:
    canary = apps.get_model("core", "EncryptionCanary")
    if not canary.objects.exists():
        canary.objects.create(value=CANARY_PLAINTEXT)


class Migration(migrations.Migration):
    dependencies = [("core", "0001_initial")]
    operations = [migrations.RunPython(create_canary, migrations.RunPython.noop)]
