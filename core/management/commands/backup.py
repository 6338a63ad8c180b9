from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import ZspbError
from core.services.backups import backup_create


class Command(BaseCommand):
    help = (
        "Write an encrypted backup (database dump, media, DIGEST_SECRET and "
        "FIELD_ENCRYPTION_KEY) into --output, encrypted with BACKUP_KEY, and keep the newest "
        "--keep backups there."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", required=True, type=Path, help="backup directory")
        parser.add_argument("--keep", type=int, default=14,
                            help="how many backups to keep in --output (default 14)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            path = backup_create(output=Path(options["output"]), key=os.environ.get("BACKUP_KEY"),
                                 keep=options["keep"])
        except ZspbError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"Backup written: {path} ({path.stat().st_size} bytes)")
