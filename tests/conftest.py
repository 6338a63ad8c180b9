from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection, connections

from core.models import Role, User
from core.services.roles import roles_sync_from_config
from tests.factories import ProductFactory, UserFactory

# Discord stand-in fixtures; also keeps every test offline (Discord off, loopback-only httpx).
pytest_plugins = ["tests.discord_conftest"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """PostgreSQL-only tests skip elsewhere, except where PostgreSQL is required (CI)."""
    vendor = connections["default"].vendor
    if vendor == "postgresql":
        return
    if os.environ.get("ZSPB_REQUIRE_POSTGRES"):
        raise pytest.UsageError(
            f"ZSPB_REQUIRE_POSTGRES is set but the database is {vendor}; set DATABASE_URL"
        )
    skip = pytest.mark.skip(reason=f"needs PostgreSQL (row locks); database is {vendor}")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    # Throttle counters live in the cache; one test's attempts must not throttle the next.
    cache.clear()


@pytest.fixture(autouse=True)
def _fast_hashing(settings: Any) -> None:
    # Argon2 costs ~100 MiB and tens of ms per hash; tests hash thousands of passwords.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def roles(db: None) -> dict[str, Role]:
    roles_sync_from_config()
    return {role.key: role for role in Role.objects.all()}


@pytest.fixture
def member(roles: dict[str, Role]) -> User:
    return UserFactory.create(username="member", role=roles["user"])


@pytest.fixture
def support(roles: dict[str, Role]) -> User:
    return UserFactory.create(username="support", role=roles["support"])


@pytest.fixture
def moderator(roles: dict[str, Role]) -> User:
    return UserFactory.create(username="moderator", role=roles["moderator"])


@pytest.fixture
def admin(roles: dict[str, Role]) -> User:
    return UserFactory.create(username="admin", role=roles["admin"])


@pytest.fixture
def product(db: None) -> Any:
    return ProductFactory.create(name="Loader", slug="loader")


def run_concurrently(fn: Callable[[int], Any], threads: int = 16) -> list[Any]:
    """Run fn(i) in `threads` real threads released together; return results or exceptions.

    Each thread closes its own database connection, so PostgreSQL sees separate sessions.
    """
    barrier = threading.Barrier(threads)
    results: list[Any] = [None] * threads

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = fn(index)
        except Exception as exc:  # the caller counts failures by type
            results[index] = exc
        finally:
            connection.close()

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=120)
    return results

