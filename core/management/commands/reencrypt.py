from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from core.services.encryption import data_reencrypt


class Command(BaseCommand):
    help = (
        "After putting a new key first in FIELD_ENCRYPTION_KEY (old keys after it), rewrite "
        "every encrypted value with the new key; the old keys can then be removed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        def progress(label: str, done: int) -> None:
            self.stdout.write(f"  {label}: {done} rows")

        counts = data_reencrypt(progress=progress)
        total = sum(counts.values())
        self.stdout.write(self.style.SUCCESS(f"re-encrypted {total} rows in {len(counts)} tables"))
