from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import ZspbError
from core.services.roles import roles_sync_from_config


class Command(BaseCommand):
    help = (
        "Create the roles of config.yaml that do not exist yet. Existing roles are edited in "
        "the admin and left alone unless --overwrite is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--overwrite", action="store_true",
                            help="reset existing roles to the values in config.yaml")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = roles_sync_from_config(overwrite=options["overwrite"])
        except ZspbError as exc:
            raise CommandError(exc.message) from None
        for key, why in report.skipped.items():
            self.stderr.write(self.style.WARNING(f"role {key!r} not created: {why}"))
        self.stdout.write(
            f"roles: created {report.created or '-'}, updated {report.updated or '-'}, "
            f"unchanged {report.unchanged or '-'}"
        )
