from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import ZspbError
from core.services.backups import backup_restore


class Command(BaseCommand):
    help = (
        "Restore a backup made by `manage.py backup` into an empty database and media directory "
        "(refuses otherwise); prints the secrets to put in .env when they differ."
    )
    # The target database is empty: checks that read it cannot run before the restore.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="a .zspb-backup file")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = backup_restore(archive=Path(options["file"]), key=os.environ.get("BACKUP_KEY"))
        except ZspbError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"Restored the {result.vendor} database and {result.media_files} "
                          "media files.")
        if result.secrets_to_set:
            self.stdout.write(self.style.WARNING(
                "The data needs these values; put them in .env before starting the site:"))
            for name, value in result.secrets_to_set.items():
                self.stdout.write(f"{name}={value}")
