"""PostgreSQL connections killed under traffic (a restart, a failover, pg_terminate_backend):
no request that starts afterwards fails, and one caught in flight answers 503 with Retry-After
(the API's error shape, a plain page elsewhere), never 500; journaled once, not per request.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import pytest
from django.conf import settings as django_settings
from django.db import InterfaceError, OperationalError, connection, connections
from django.test import Client

import api.license
import api.pages.member
from core.models import LogEntry
from core.services.keys import key_redeem, keys_generate
from tests.api.conftest import assert_error

NONCE = "0123456789abcdef0123"
CHECK = "/api/license/check"

pytestmark = pytest.mark.postgres


def _cut_connections() -> int:
    """Terminates every other backend of the test database: the server's connections."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def _licence_body(code: str) -> dict[str, Any]:
    return {"product": "loader", "hwid": "hw-1", "nonce": NONCE, "key": code}


def _valid(response: httpx.Response) -> bool:
    assert response.status_code == 200, response.text
    return bool(json.loads(base64.b64decode(response.json()["payload"]))["valid"])


def _unavailable_as_promised(response: httpx.Response, *, api: bool) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    if api:
        body = response.json()
        assert set(body) == {"code", "message", "details"}
        assert body["code"] == "service_unavailable"


@pytest.fixture
def member_setup(moderator: Any, member: Any, product: Any, settings: Any) -> dict[str, Any]:
    from dataclasses import replace

    from config.behaviour import Rate

    settings.ZSPB = replace(settings.ZSPB, rate_limits={
        **settings.ZSPB.rate_limits, "license_ip": Rate(count=100_000, seconds=60),
        "license_subject": Rate(count=100_000, seconds=60)})
    code = keys_generate(actor=moderator, product=product, duration=timedelta(days=30),
                         count=1).codes[0]
    key_redeem(user=member, code=code)
    browser = Client()
    browser.force_login(member, backend="django.contrib.auth.backends.ModelBackend")
    return {"code": code, "session": browser.cookies[django_settings.SESSION_COOKIE_NAME].value}


@pytest.mark.django_db(transaction=True)
def test_requests_after_killed_connections_succeed(asgi_server, member_setup):
    # As in production: each request takes a connection from the process's pool and gives it
    # back when it ends (no persistent connections, see config/settings.py). What is cut
    # here are the pool's idle connections; the pool checks a connection at checkout and
    # replaces a dead one, so no request sees it. The thread-reuse case (a sync worker) is
    # test_a_worker_thread_whose_pooled_connection_was_killed.
    assert connections.settings["default"]["OPTIONS"]["pool"]
    assert connections.settings["default"]["CONN_MAX_AGE"] == 0
    cookies = {django_settings.SESSION_COOKIE_NAME: member_setup["session"]}
    statuses: list[int] = []
    with httpx.Client(base_url=asgi_server, timeout=30, cookies=cookies) as http:
        try:
            for _ in range(5):
                assert _valid(http.post(CHECK, json=_licence_body(member_setup["code"])))
                assert http.get("/").status_code == 200
                assert _cut_connections() >= 1
                # Started after the cut: each finds its connection dead and opens another.
                licence = http.post(CHECK, json=_licence_body(member_setup["code"]))
                page = http.get("/")
                me = http.get("/api/auth/me")
                statuses += [licence.status_code, page.status_code, me.status_code]
                assert _valid(licence)
                assert page.status_code == 200 and "member" in page.text
                assert me.status_code == 200 and me.json()["username"] == "member"
        finally:
            _cut_connections()
    assert statuses and set(statuses) == {200}
    assert not LogEntry.objects.filter(category=LogEntry.Category.ERROR).exists()


@pytest.fixture
def wsgi_server(transactional_db: None, settings: Any) -> Iterator[str]:
    """The site behind a one-thread WSGI server, as a sync worker: every request runs on the
    same thread, and Django's request signals run, so the thread's connection goes back to
    the pool when each request ends (the test client skips those signals, which is why it
    cannot show this)."""
    from django.core.wsgi import get_wsgi_application

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "127.0.0.1"]
    settings.SESSION_COOKIE_SECURE = False

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = make_server("127.0.0.1", 0, get_wsgi_application(), handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=15)
        server.server_close()
        _cut_connections()  # the pool's connections, before the flush


@pytest.mark.django_db(transaction=True)
def test_a_worker_thread_whose_pooled_connection_was_killed(wsgi_server, member_setup):
    """The request after the cut, on the same thread, is given a live connection: the dead
    one is found at checkout and replaced, before any query of the request."""
    cookies = {django_settings.SESSION_COOKIE_NAME: member_setup["session"]}
    with httpx.Client(base_url=wsgi_server, timeout=30, cookies=cookies) as http:
        for _ in range(3):
            assert http.get("/").status_code == 200
            assert _cut_connections() >= 1  # the pool's, the one the thread used among them
            assert http.get("/").status_code == 200
            assert http.get("/").status_code == 200
    assert not LogEntry.objects.filter(category=LogEntry.Category.ERROR).exists()


@pytest.mark.django_db(transaction=True)
def test_requests_in_flight_when_connections_die_answer_503_never_500(
        asgi_server, member_setup):
    cookies = {django_settings.SESSION_COOKIE_NAME: member_setup["session"]}
    stop = threading.Event()
    answers: list[tuple[str, int, httpx.Response]] = []
    lock = threading.Lock()

    def traffic(index: int) -> None:
        with httpx.Client(base_url=asgi_server, timeout=30, cookies=cookies) as http:
            while not stop.is_set():
                if index % 2:
                    kind, response = "api", http.post(CHECK,
                                                      json=_licence_body(member_setup["code"]))
                else:
                    kind, response = "page", http.get("/")
                with lock:
                    answers.append((kind, response.status_code, response))

    workers = [threading.Thread(target=traffic, args=(i,)) for i in range(4)]
    for worker in workers:
        worker.start()
    cuts = 0
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            time.sleep(0.05)
            cuts += _cut_connections()
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
        _cut_connections()
    assert cuts >= 10
    # Every new connection is cut within 50 ms, and the pool retries a failed connect after
    # 1, 2... s: a client gets about one answer a second while this lasts.
    assert len(answers) >= 8
    assert not [status for _, status, _ in answers if status not in (200, 503)], [
        (kind, status, response.text[:200]) for kind, status, response in answers
        if status not in (200, 503)]
    for kind, status, response in answers:
        if status == 503:
            _unavailable_as_promised(response, api=kind == "api")
    # Bugs are journaled per place; a database outage once per error type, whatever the count.
    errors = list(LogEntry.objects.filter(category=LogEntry.Category.ERROR))
    assert all(entry.action == "database.unavailable" for entry in errors), errors
    assert len(errors) <= 2  # OperationalError and InterfaceError at most
    unavailable = sum(1 for _, status, _ in answers if status == 503)
    # Once the cuts stop, requests succeed again (after the pool's reconnect delay at most).
    with httpx.Client(base_url=asgi_server, timeout=30, cookies=cookies) as http:
        assert http.get("/").status_code == 200
        assert _valid(http.post(CHECK, json=_licence_body(member_setup["code"])))
    print(f"\n{len(answers)} requests, {cuts} connections cut, {unavailable} answered 503")


@pytest.mark.django_db
@pytest.mark.parametrize("error", [OperationalError("terminating connection due to "
                                                    "administrator command"),
                                   InterfaceError("connection already closed")])
def test_database_error_in_an_api_operation_is_503_with_retry_after(client, monkeypatch, error):
    def cut(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(api.license, "license_check", cut)
    for _ in range(3):
        response = client.post(CHECK, data=json.dumps(_licence_body("ZSPB-1")),
                               content_type="application/json")
        body = assert_error(response, 503, "service_unavailable")
        assert response["Retry-After"] == "5" and body["details"] == {"retry_after": 5}
    entries = LogEntry.objects.filter(category=LogEntry.Category.ERROR)
    assert [(entry.action, entry.data["place"], entry.data["error"]) for entry in entries] == [
        ("database.unavailable", "database", type(error).__name__)]


@pytest.mark.django_db
def test_database_error_in_a_page_is_a_plain_503_page(client, member, monkeypatch):
    def cut(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("server closed the connection unexpectedly")

    client.force_login(member, backend="django.contrib.auth.backends.ModelBackend")
    monkeypatch.setattr(api.pages.member, "user_stats", cut)
    for _ in range(2):
        response = client.get("/")
        assert response.status_code == 503 and response["Retry-After"] == "5"
        assert response["Content-Type"].startswith("text/html")
        assert b"try again" in response.content
    assert list(LogEntry.objects.filter(category=LogEntry.Category.ERROR)
                .values_list("action", flat=True)) == ["database.unavailable"]


@pytest.mark.django_db(transaction=True)
def test_database_error_outside_a_view_is_503_too(asgi_server, monkeypatch):
    # Raised by middleware after the view (the session saved): Django's handler500 path,
    # through the real ASGI stack.
    from django.contrib.sessions.middleware import SessionMiddleware

    def cut(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(SessionMiddleware, "process_response", cut)
    with httpx.Client(base_url=asgi_server, timeout=30) as http:
        page = http.get("/login")
        response = http.get("/api/auth/csrf")
    _unavailable_as_promised(page, api=False)
    assert page.headers["Content-Type"].startswith("text/html")
    _unavailable_as_promised(response, api=True)
    assert list(LogEntry.objects.filter(category=LogEntry.Category.ERROR)
                .values_list("action", flat=True)) == ["database.unavailable"]


@pytest.fixture(autouse=True)
def _fresh_connections_afterwards() -> Iterator[None]:
    """These tests kill every other backend of the test database: the next tests (a live
    server's thread, a pooled connection) must not inherit a killed one."""
    yield
    for conn in connections.all():
        conn.close()
        close_pool = getattr(conn, "close_pool", None)  # PostgreSQL with a pool only
        if close_pool is not None and getattr(conn, "pool", None) is not None:
            close_pool()
