"""Unhandled errors of pages, the admin, the API and tasks reach the system-error journal once,
with the request id that the response header and the log line carry (issue 9, defect 2)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import Client

from core import error_hooks
from core.models import LogEntry
from core.requestid import HEADER, RequestIdFilter
from core.services import logs
from tests.staff.conftest import login_staff

pytestmark = pytest.mark.django_db


class Boom(RuntimeError):
    pass


class OtherBoom(ValueError):
    pass


def _raise(exc: type[Exception]) -> Any:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise exc("secret internals: password=hunter2")

    return fail


@pytest.fixture(autouse=True)
def _fresh_dedup_window() -> None:
    cache.clear()


@pytest.fixture
def lines() -> Any:
    """The log lines as the configured console handler formats them."""
    collected: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            collected.append(self.format(record))

    handler = Collect()
    handler.addFilter(RequestIdFilter())
    logging_config: Any = settings.LOGGING
    handler.setFormatter(logging.Formatter(logging_config["formatters"]["plain"]["format"]))
    root = logging.getLogger()
    root.addHandler(handler)
    yield collected
    root.removeHandler(handler)


def errors() -> list[LogEntry]:
    return list(LogEntry.objects.filter(category=LogEntry.Category.ERROR).order_by("pk"))


def test_every_response_has_a_request_id(client):
    first = client.get("/api/health")
    second = client.get("/login")
    assert first[HEADER] and second[HEADER] and first[HEADER] != second[HEADER]


def test_a_sane_incoming_request_id_is_kept_and_a_strange_one_replaced(client):
    assert client.get("/login", HTTP_X_REQUEST_ID="nginx-1234abcd")[HEADER] == "nginx-1234abcd"
    for strange in ("short", "x" * 65, "bad id with spaces", "<script>alert(1)</script>"):
        answered = client.get("/login", HTTP_X_REQUEST_ID=strange)[HEADER]
        assert answered != strange and len(answered) == 32


def test_a_page_error_is_journaled_once_with_the_request_id(member, monkeypatch, lines,
                                                            settings):
    settings.DEBUG = False
    monkeypatch.setattr("api.pages.member.user_stats", _raise(Boom))
    client = Client(raise_request_exception=False)
    client.force_login(member, backend="django.contrib.auth.backends.ModelBackend")
    response = client.get("/", HTTP_X_REQUEST_ID="page-request-0001")
    assert response.status_code == 500
    assert b"hunter2" not in response.content and b"Boom" not in response.content
    assert response[HEADER] == "page-request-0001"
    [entry] = errors()
    assert entry.action == "request.unhandled"
    assert entry.data["error"] == "Boom" and entry.data["place"] == "GET home"
    assert entry.data["request_id"] == "page-request-0001"
    assert entry.data["path"] == "/" and "hunter2" not in str(entry.data)
    assert any("[page-request-0001]" in line and "Internal Server Error" in line
               for line in lines), lines
    assert any("[page-request-0001]" in line and "request.unhandled" in line
               for line in lines), lines


def test_an_admin_error_is_journaled(admin, monkeypatch):
    monkeypatch.setattr("staff.dashboard.dashboard_snapshot", _raise(Boom))
    client = login_staff(Client(raise_request_exception=False), admin)
    response = client.get("/admin/")
    assert response.status_code == 500
    [entry] = errors()
    assert entry.action == "request.unhandled" and entry.data["error"] == "Boom"
    assert entry.data["place"] == "GET admin:index"
    assert entry.data["request_id"] == response[HEADER]


def test_an_api_error_is_journaled_once_not_twice(member, monkeypatch, lines):
    monkeypatch.setattr("api.stats.user_stats", _raise(Boom))
    client = Client(raise_request_exception=False)
    client.force_login(member, backend="django.contrib.auth.backends.ModelBackend")
    response = client.get("/api/stats/me")
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "internal_error" and "hunter2" not in response.content.decode()
    assert body["details"] == {"request_id": response[HEADER]}
    [entry] = errors()
    assert entry.action == "api.unhandled" and entry.data["error"] == "Boom"
    assert entry.data["place"] == "GET /api/stats/me"
    assert entry.data["request_id"] == response[HEADER]
    assert any(f"[{response[HEADER]}]" in line and "unhandled API error" in line
               for line in lines), lines


def test_errors_are_deduplicated_by_place_and_type(member, monkeypatch):
    client = Client(raise_request_exception=False)
    client.force_login(member, backend="django.contrib.auth.backends.ModelBackend")
    monkeypatch.setattr("api.pages.member.user_stats", _raise(Boom))
    for _ in range(3):
        assert client.get("/").status_code == 500
    assert len(errors()) == 1
    monkeypatch.setattr("api.pages.member.user_stats", _raise(OtherBoom))
    assert client.get("/").status_code == 500
    monkeypatch.setattr("api.stats.user_stats", _raise(Boom))
    assert client.get("/api/stats/me").status_code == 500
    assert [e.data["error"] for e in errors()] == ["Boom", "OtherBoom", "Boom"]
    # Once the window is over, the next one is journaled again.
    cache.clear()
    monkeypatch.setattr("api.pages.member.user_stats", _raise(Boom))
    client.get("/")
    assert len(errors()) == 4


def test_a_down_cache_still_journals_and_a_down_journal_never_raises(member, monkeypatch):
    def cache_down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(cache, "add", cache_down)  # the cache the journal uses
    client = Client(raise_request_exception=False)
    client.force_login(member, backend="django.contrib.auth.backends.ModelBackend")
    monkeypatch.setattr("api.pages.member.user_stats", _raise(Boom))
    assert client.get("/").status_code == 500
    assert client.get("/").status_code == 500
    assert len(errors()) == 2

    monkeypatch.setattr(logs, "log_event", _raise(OtherBoom))
    assert logs.error_journal(action="request.unhandled", place="x", error=Boom()) is None
    assert client.get("/").status_code == 500


def failing_task() -> None:
    raise Boom("task internals")


def test_a_failing_task_is_journaled_once(settings):
    from django_q.tasks import async_task

    for _ in range(2):
        with pytest.raises(Boom):
            async_task("tests.api.test_request_errors.failing_task", sync=True)
    [entry] = errors()
    assert entry.action == "task.failed" and entry.data["error"] == "Boom"
    assert entry.data["place"] == "task:tests.api.test_request_errors.failing_task"
    assert entry.data["request_id"]


@pytest.mark.django_db(transaction=True)  # the worker loop closes old connections
def test_a_task_failing_in_the_worker_loop_is_journaled_with_its_id():
    """django-q2's own worker loop, as qcluster runs it (not the sync shortcut)."""
    from multiprocessing import Queue, Value

    from django_q.worker import worker

    tasks: Any = Queue()
    results: Any = Queue()
    tasks.put({"id": "task-id-0001", "name": "nightly-job", "args": (), "kwargs": {},
               "func": "tests.api.test_request_errors.failing_task"})
    tasks.put("STOP")
    worker(tasks, results, Value("f", -1))
    assert results.get(timeout=5)["success"] is False
    [entry] = errors()
    assert entry.action == "task.failed" and entry.data["error"] == "Boom"
    assert entry.data["request_id"] == "task-id-0001"
    assert entry.data["task"] == "nightly-job"


def test_a_task_failure_reported_by_the_worker_is_journaled():
    # What the worker process sends after a failed (not sync) task: the error as text.
    task = {"id": "abc123", "name": "zspb-job", "func": "core.tasks.something",
            "success": False,
            "result": "boom : Traceback (most recent call last):\n  File \"x.py\", line 1\n"
                      "core.errors.Conflict: boom\n"}
    error_hooks._on_task_executed(sender="django_q", task=task, func=failing_task)
    error_hooks._on_task_executed(sender="django_q", task={**task, "success": True},
                                  func=failing_task)
    [entry] = errors()
    assert entry.data["error"] == "Conflict" and entry.data["request_id"] == "abc123"


def test_the_request_id_also_works_under_asgi():
    import asyncio

    from django.test import AsyncClient

    response = asyncio.run(AsyncClient().get("/login",
                                             headers={"X-Request-ID": "asgi-request-01"}))
    assert response.status_code == 200
    assert response[HEADER] == "asgi-request-01"


@pytest.mark.django_db(transaction=True)
def test_a_page_error_under_asgi_is_journaled(monkeypatch):
    """Under uvicorn Django turns the exception into a 500 in another thread (asgiref carries
    sys.exc_info() there, which the journal hook relies on)."""
    import asyncio

    from django.test import AsyncClient

    monkeypatch.setattr("api.pages.auth.render", _raise(Boom))
    client = AsyncClient(raise_request_exception=False)
    response = asyncio.run(client.get("/login", headers={"X-Request-ID": "asgi-error-0001"}))
    assert response.status_code == 500
    [entry] = errors()
    assert entry.data["error"] == "Boom" and entry.data["request_id"] == "asgi-error-0001"
    assert entry.data["place"] == "GET login"
