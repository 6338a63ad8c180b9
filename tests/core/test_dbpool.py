"""The PostgreSQL connection pool: bounded per process, connections killed while idle replaced at
checkout without waiting, and a forked process never shares its parent's connections."""

from __future__ import annotations

import os
import threading
import time
from typing import Any, cast

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from core.dbpool import check_connection

pytestmark = pytest.mark.postgres


def _in_threads(count: int, hold: threading.Barrier | None = None) -> list[Any]:
    """Each of `count` new threads (as ASGI runs each request's sync code) takes a connection,
    reads its backend pid and gives the connection back."""
    results: list[Any] = []
    lock = threading.Lock()

    def one() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                row = cursor.fetchone()
                if hold is not None:
                    hold.wait(timeout=15)
            result: Any = row[0] if row else None
        except Exception as error:  # reported to the test, not raised in the thread
            result = error
        finally:
            connection.close()
        with lock:
            results.append(result)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def _admin() -> psycopg.Connection[Any]:
    """A connection of its own, outside the pool, to look at and kill the pool's."""
    db = connection.settings_dict
    return psycopg.connect(dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"],
                           host=db["HOST"], port=db["PORT"] or None, autocommit=True)


def _pool_backends() -> set[int]:
    """The test database's backends but the admin one: this process's pool."""
    with _admin() as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'").fetchall()
    return {row[0] for row in rows}


def _terminate(pids: set[int]) -> None:
    with _admin() as admin:
        admin.execute("SELECT count(pg_terminate_backend(pid)) FROM unnest(%s::int[]) pid",
                      [sorted(pids)])
    # pg_terminate_backend only signals: wait until the backends are gone.
    deadline = time.monotonic() + 10
    while _pool_backends() & pids and time.monotonic() < deadline:
        time.sleep(0.05)


def test_postgresql_uses_the_pool_without_persistent_connections() -> None:
    database = settings.DATABASES["default"]
    assert database["ENGINE"] == "core.pgbackend"
    assert database["CONN_MAX_AGE"] == 0
    assert database["OPTIONS"]["pool"]["max_size"] == settings.DB_POOL_MAX_SIZE
    assert "check" not in database["OPTIONS"]["pool"]  # Django passes its own: TypeError


@pytest.mark.django_db(transaction=True)
def test_connections_are_reused_and_bounded_by_max_size() -> None:
    max_size = settings.DB_POOL_MAX_SIZE
    assert cast(Any, connection).pool._check is check_connection  # pool: not in the stubs
    # Before the pool, each of these threads left one more connection open.
    sequential = [pid for _ in range(30) for pid in _in_threads(1)]
    assert all(isinstance(pid, int) for pid in sequential), sequential
    assert len(_pool_backends()) <= max_size
    # More threads at once than the pool holds: the extra ones wait for a connection.
    burst = _in_threads(max_size * 3)
    assert all(isinstance(pid, int) for pid in burst), burst
    assert len(set(burst)) <= max_size
    assert len(_pool_backends()) <= max_size


@pytest.mark.django_db(transaction=True)
def test_connections_killed_while_idle_are_replaced_at_the_next_checkout() -> None:
    _in_threads(4, hold=threading.Barrier(4))
    idle = _pool_backends()
    assert len(idle) >= 4
    _terminate(idle)
    # psycopg_pool's own check alone takes the dead ones one by one with 1, 2, 4 s pauses
    # between them; checking them all at the first failure makes it immediate.
    started = time.monotonic()
    after = _in_threads(1)
    elapsed = time.monotonic() - started
    assert isinstance(after[0], int) and after[0] not in idle, after
    assert elapsed < 0.9, elapsed
    assert all(isinstance(pid, int) and pid not in idle for pid in _in_threads(4))


@pytest.mark.django_db(transaction=True)
def test_a_forked_process_opens_its_own_connections() -> None:
    _in_threads(2, hold=threading.Barrier(2))
    parent = _pool_backends()  # idle in this process's pool
    assert parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its backend pid, then leave without any cleanup
        code = 1
        try:
            os.close(read)
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                row = cursor.fetchone()
            os.write(write, str(row[0] if row else "").encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        child_backend = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child_backend.isdigit() and int(child_backend) not in parent
    # The parent's connections were neither used nor closed by the child.
    assert parent <= _pool_backends()
