from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
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



@pytest.fixture
def asgi_server(transactional_db: None, settings: Any, monkeypatch: pytest.MonkeyPatch
                ) -> Iterator[str]:
    """The whole site (config.asgi: HTTP and the /ws/member/ WebSocket on one port) served by
    a real uvicorn in a thread; yields its base URL, "http://127.0.0.1:<port>".

    The database is transactional (the server's threads see only committed rows). Cookies
    are not Secure (plain http). With the in-memory channel layer (no REDIS_URL) the layer is
    this process's: pushes made from the test's own thread are handed to the server's event
    loop, as they would be when made by a request.
    """
    import uvicorn
    from channels.layers import InMemoryChannelLayer, get_channel_layer

    from config.asgi import application

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "127.0.0.1"]
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    # The server's threads close their database connections after each request and socket
    # call, so none is left open when the test database is flushed or dropped.
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(
        application, host="127.0.0.1", port=port, lifespan="off", log_level="warning",
        loop="asyncio", ws="websockets-sansio",
    ))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),),
                              name=f"asgi-server-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port}")
        time.sleep(0.02)

    layer = get_channel_layer()
    if isinstance(layer, InMemoryChannelLayer):
        group_send = layer.group_send

        async def group_send_on_server_loop(group: str, message: dict[str, Any]) -> None:
            if asyncio.get_running_loop() is loop:
                await group_send(group, message)
                return
            future = asyncio.run_coroutine_threadsafe(group_send(group, message), loop)
            await asyncio.wrap_future(future)

        monkeypatch.setattr(layer, "group_send", group_send_on_server_loop)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        if not thread.is_alive():
            loop.close()
