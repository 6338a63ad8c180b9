"""The PostgreSQL connection pool (settings.DATABASES OPTIONS["pool"]): its checkout check, and
what a forked process does with the pool it inherits.

Imported by the settings, so Django's database machinery is imported only inside functions.
"""

from __future__ import annotations

import os
import sys
from typing import Any

# The parent's pools and checked-out connections, as seen by a forked child: only kept alive.
_inherited: list[Any] = []
_registered = False


def check_connection(conn: Any) -> None:
    """The pool's check at checkout: psycopg_pool's own (an empty query), plus, when it finds
    the connection dead, a check of every other idle connection at once.

    A PostgreSQL restart or failover kills all of the pool's idle connections together. The
    pool's own check discards them one per checkout, and backs off 1, 2, 4 s... between them,
    so with eight dead connections the first request after a restart waited out the whole
    pool timeout and failed (measured: 10 s, then 503). Checking them all at the first
    failure empties the pool of dead connections; the checkout then waits only for a new one.
    """
    from psycopg_pool import ConnectionPool

    try:
        ConnectionPool.check_connection(conn)
    except Exception:
        # Set by the pool on the connection it hands out, before calling this check.
        pool = getattr(conn, "_pool", None)
        if isinstance(pool, ConnectionPool):
            pool.check()  # uses ConnectionPool.check_connection: no recursion
        raise


def forget_inherited_pools() -> None:
    """In a forked child: the pools and pooled connections copied from the parent are set
    aside, so that the first query opens this process's own pool.

    Django keeps one pool per database alias for the whole process. A process forked after its
    pool opened (django-q2's sentinel forks workers, and forks a replacement after a worker
    dies or is recycled, having used the database in between; `gunicorn --preload` would
    too) inherits it: its idle connections are the parent's sockets, so parent and child
    would talk over the same PostgreSQL session, and its maintenance threads do not run in
    the child, so a pool there that needs a new connection waits until its timeout. The
    inherited objects are kept referenced, never closed: closing (or garbage-collecting) a
    psycopg connection sends PostgreSQL a terminate message over the shared socket, which
    would end the parent's session.
    """
    # Not imported means no pool was ever made (and SQLite sites need no psycopg import).
    backend = sys.modules.get("django.db.backends.postgresql.base")
    if backend is None:
        return
    pools: dict[str, Any] = getattr(backend.DatabaseWrapper, "_connection_pools", {})
    if not pools:
        return
    from django.db import connections

    _inherited.extend(pools.values())
    pools.clear()
    # Only the forking thread exists in the child; its connections are the ones to drop.
    for wrapper in connections.all(initialized_only=True):
        if wrapper.connection is not None and wrapper.settings_dict["OPTIONS"].get("pool"):
            _inherited.append(wrapper.connection)
            wrapper.connection = None


def register() -> None:
    """Installs the fork hook once per process (AppConfig.ready may run more than once)."""
    global _registered
    if not _registered:
        os.register_at_fork(after_in_child=forget_inherited_pools)
        _registered = True
