"""An API client that behaves like the site's pages: session cookie plus real CSRF checks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core import signals
from django.db import close_old_connections
from django.test import Client

from core.models import User
from tests.staff.conftest import otp_verify


class ApiClient:
    def __init__(self, user: User | None = None, ip: str = "198.51.100.1", *,
                 verified: bool = True) -> None:
        self.client = Client(enforce_csrf_checks=True, REMOTE_ADDR=ip)
        if user is not None:
            self.client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
            if verified and user.is_staff:
                # Staff sessions have passed the second factor unless a test says otherwise.
                otp_verify(self.client, user)
        self.client.get("/api/auth/csrf")

    @property
    def csrf(self) -> str:
        return str(self.client.cookies[settings.CSRF_COOKIE_NAME].value)

    def get(self, path: str, **extra: Any) -> Any:
        return self.client.get(path, **extra)

    def _send(self, method: str, path: str, body: Any, **extra: Any) -> Any:
        send = getattr(self.client, method)
        return send(path, data=json.dumps(body) if body is not None else None,
                    content_type="application/json", HTTP_X_CSRFTOKEN=self.csrf, **extra)

    def post(self, path: str, body: Any = None, **extra: Any) -> Any:
        return self._send("post", path, body, **extra)

    def delete(self, path: str, body: Any = None, **extra: Any) -> Any:
        return self._send("delete", path, body, **extra)


@pytest.fixture
def api_as():
    def make(user: User | None = None, ip: str = "198.51.100.1", *,
             verified: bool = True) -> ApiClient:
        return ApiClient(user, ip, verified=verified)

    return make


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "details"}, body
    if code is not None:
        assert body["code"] == code, body
    return body


@pytest.fixture
def keep_test_connection() -> Iterator[None]:
    """For tests that call the WSGI application itself (schemathesis): its handler closes
    "old" connections around each request, which in a test would close the connection holding
    the test's transaction. Django's test client disconnects the same signals."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)
