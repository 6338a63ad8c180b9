"""Django's PostgreSQL backend, whose connection pool checks connections with
core.dbpool.check_connection.

Django 5.2 builds the pool itself and passes it `check=` (ConnectionPool.check_connection with
CONN_HEALTH_CHECKS, else None), so OPTIONS["pool"] cannot carry a check of its own: a second
`check` is a TypeError. The pool is built on first use; its check is replaced right after.
"""

from __future__ import annotations

from typing import Any, cast

from django.db.backends.postgresql import base

from core.dbpool import check_connection


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self) -> Any:
        pool = cast(Any, super()).pool  # not in django-stubs
        # psycopg_pool has no public setter; `_check` is what its getconn() calls.
        if pool is not None and pool._check is not check_connection:
            pool._check = check_connection
        return pool
