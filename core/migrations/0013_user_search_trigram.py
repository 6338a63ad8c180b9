"""Trigram indexes for the staff admin's member search (issue 12: changelists at scale).

The admin searches username, e-mail and Discord name with icontains, which PostgreSQL runs as
UPPER(column) LIKE '%term%': without these, a scan of every member (over 200 ms at 200,000
members). pg_trgm ships with PostgreSQL and is a trusted extension (a database owner may create
it); where it cannot be created the search keeps working, only without the indexes. Nothing is
done on other databases. The indexes are not in the models' state: Django has no field lookup
that would use them, only the expression the admin's search produces.
"""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError, migrations, transaction

COLUMNS = {"user_search_username_trgm": "username", "user_search_email_trgm": "email",
           "user_search_discord_trgm": "discord_username"}


def create(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError:
        return  # no privilege to create it: the search still works, as a scan
    for name, column in COLUMNS.items():
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON "core_user" '
            f'USING gin ((UPPER("{column}"::text)) gin_trgm_ops)')


def drop(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in COLUMNS:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


class Migration(migrations.Migration):
    dependencies = [("core", "0012_licensekey_drop_duplicate_indexes")]

    operations = [migrations.RunPython(create, drop)]
