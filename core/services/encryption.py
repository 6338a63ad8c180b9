"""Re-encryption after a FIELD_ENCRYPTION_KEY rotation."""

from __future__ import annotations

from collections.abc import Callable

from django.apps import apps
from django.db import transaction
from django.db.models import Model
from encrypted_model_fields.fields import EncryptedMixin

CHUNK = 1000


def encrypted_fields() -> dict[type[Model], list[str]]:
    found: dict[type[Model], list[str]] = {}
    for model in apps.get_models():
        names = [f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedMixin)]
        if names:
            found[model] = names
    return found


def data_reencrypt(*, progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Rewrite every encrypted column with the first key of FIELD_ENCRYPTION_KEY.

    Rows are read (decrypted with any listed key) and written back in chunks, so an old key can
    be dropped from the list afterwards. Safe to re-run.
    """
    counts: dict[str, int] = {}
    for model, names in encrypted_fields().items():
        label = model._meta.label
        done, last_pk = 0, 0
        manager = model._default_manager
        while True:
            with transaction.atomic():
                rows = list(
                    manager.select_for_update().filter(pk__gt=last_pk).order_by("pk")
                    .only("pk", *names)[:CHUNK]
                )
                if not rows:
                    break
                # Row by row: bulk_update wraps values in CASE expressions, which the
                # encrypted fields would encrypt as text instead of the value.
                for row in rows:
                    row.save(update_fields=names)
            done += len(rows)
            last_pk = rows[-1].pk
            if progress:
                progress(label, done)
        counts[label] = done
    return counts
