from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import ZspbError
from core.models import User
from core.services.datagen import DataSpec, data_generate


class Command(BaseCommand):
    help = (
        "Create a large synthetic dataset with PostgreSQL COPY (benchmarks, scale checks): "
        "members, subscriptions (some just ended), keys (some redeemed) and journal rows. "
        "Never run it on a production database."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--users", type=int, default=0, help="members to create")
        parser.add_argument("--keys", type=int, default=0,
                            help="licence keys; one in ten is redeemed by a subscription holder")
        parser.add_argument("--subscriptions", type=int, default=0,
                            help="subscriptions, spread over the members (and sibling products "
                                 "<slug>-2... when they outnumber them)")
        parser.add_argument("--due", type=int, default=0,
                            help="of the subscriptions, how many ended within the last hour "
                                 "(not yet seen by the expiry jobs)")
        parser.add_argument("--journal", type=int, default=0,
                            help="journal rows across user actions, moderation and errors")
        parser.add_argument("--product", default="generated",
                            help="slug of the product (created when missing)")
        parser.add_argument("--linked", type=int, default=50,
                            help="percentage of the members with a Discord account linked")
        parser.add_argument("--json", action="store_true",
                            help="print a JSON summary as the last line")

    def handle(self, *args: Any, **options: Any) -> None:
        counts = {name: options[name] for name in
                  ("users", "keys", "subscriptions", "due", "journal")}
        if any(value < 0 for value in counts.values()):
            raise CommandError("Counts cannot be negative.")
        if not 0 <= options["linked"] <= 100:
            raise CommandError("--linked is a percentage (0-100).")
        spec = DataSpec(product=options["product"], linked_percent=options["linked"], **counts)
        actor = User.objects.filter(is_superuser=True).order_by("pk").first()
        try:
            report = data_generate(spec=spec, actor=actor,
                                   say=lambda text: self.stdout.write(text))
        except ZspbError as exc:
            raise CommandError(exc.message) from None
        if options["json"]:
            due = report.due_between
            self.stdout.write(json.dumps({
                "rows": report.rows, "seconds": report.seconds, "products": report.products,
                "due_between": [due[0].isoformat(), due[1].isoformat()] if due else None,
            }))
