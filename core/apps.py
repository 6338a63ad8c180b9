from __future__ import annotations

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "ZalypaSPB"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from core import (
            checks,  # noqa: F401  (registers the system checks)
            dbpool,
            error_hooks,
        )

        error_hooks.connect()
        dbpool.register()
