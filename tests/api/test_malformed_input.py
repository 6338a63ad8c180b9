"""Malformed input on every operation answers 4xx in the API's one error shape (issue 11).

The operations come from the OpenAPI schema, so a new one is covered as soon as it exists: each
is called with malformed JSON, invalid UTF-8, a lone surrogate, NUL, a 1 MB string, JSON nested
10,000 levels deep, a non-JSON content type and a body over DATA_UPLOAD_MAX_MEMORY_SIZE; its
path, query and header parameters get NUL, invalid UTF-8 and an encoded lone surrogate. The
answer is never a server error and never another shape. An operation that reads no body may
ignore one (HTTP lets it), but then it must not fail either.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.test import Client

from api.api import api
from config.behaviour import Rate
from core.models import User
from tests.factories import UserFactory
from tests.staff.conftest import otp_verify

pytestmark = pytest.mark.django_db

CSRF = "c" * 32
BOT_INVOKER = 777000333

# A schema-valid body per operation that reads one, so that a malformed value reaches the
# field it is put in instead of failing on its neighbours. A new body operation must be added
# here (test_every_body_operation_has_a_sample fails until it is).
SAMPLES: dict[str, dict[str, Any]] = {
    "auth_login": {"username": "someone", "password": "whatever"},
    "auth_register": {"invite": "INV-" + "0" * 20, "username": "fresh_user",
                      "password": "a fine passphrase", "email": ""},
    "auth_change_password": {"old_password": "whatever", "new_password": "a fine passphrase"},
    "keys_redeem": {"key": "ABCDE-ABCDE-ABCDE-ABCDE"},
    "discord_link": {"code": "ABCD-EFGH"},
    "license_check": {"product": "loader", "hwid": "machine-1", "nonce": "n" * 16,
                      "key": "ABCDE-ABCDE-ABCDE-ABCDE"},
    "bot_link_code_create": {"discord_username": "someone"},
    "bot_key_redeem": {"key": "ABCDE-ABCDE-ABCDE-ABCDE"},
    "bot_keys_generate": {"product": "loader", "duration_days": 30, "count": 1, "note": "n"},
    "bot_ban_create": {"target_discord_id": "123", "reason": "spam", "duration_hours": 1},
    "bot_ban_lift": {"target_discord_id": "123"},
    "bot_member_event": {"event": "join"},
}

# operationId -> why a malformed value in a string field may get that operation's ordinary
# refusal instead of an error: the licence check signs the same "not valid" answer for every
# failure, garbage keys included, so that a refusal tells nothing apart (api/license.py).
SIGNED_REFUSALS = {"license_check": "refusals are a signed 200 with valid=false"}


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    path: str
    parameters: tuple[tuple[str, str], ...]  # (in, name)
    reads_body: bool

    def url(self, values: dict[str, str] | None = None, query: str = "") -> str:
        path = self.path
        for where, name in self.parameters:
            if where == "path":
                path = path.replace("{" + name + "}", (values or {}).get(name, "1"))
        return path + (f"?{query}" if query else "")


def _operations() -> list[Operation]:
    found = []
    for path, methods in api.get_openapi_schema()["paths"].items():
        for method, operation in methods.items():
            parameters = tuple((p["in"], p["name"]) for p in operation.get("parameters", []))
            found.append(Operation(operation["operationId"], method, path, parameters,
                                   "requestBody" in operation))
    return found


OPERATIONS = _operations()


def _strings(body: dict[str, Any]) -> list[str]:
    return [name for name, value in body.items() if isinstance(value, str)]


def _with_each_string(op: Operation, raw_value: str) -> Iterator[tuple[str, bytes]]:
    """The sample body with one string field set to raw_value (raw JSON text), field by field;
    for an operation without a body, one body of a single such field."""
    sample = SAMPLES.get(op.operation_id, {"text": "x"})
    for name in _strings(sample) or ["text"]:
        marker = "\u2603MARKER\u2603"
        text = json.dumps({**sample, name: marker})
        yield name, text.replace(json.dumps(marker), raw_value).encode("utf-8",
                                                                      "surrogatepass")


def _nested(depth: int) -> bytes:
    return b'{"a":' + b"[" * depth + b"]" * depth + b"}"


# name -> (content type, the bodies to send for an operation: (what, bytes))
BodyCases = Callable[[Operation], Iterator[tuple[str, bytes]]]
BODY_INPUTS: dict[str, tuple[str, BodyCases]] = {
    "malformed_json": ("application/json", lambda op: iter([("body", b'{"key": "x",')])),
    "invalid_utf8": ("application/json",
                     lambda op: ((name, body.replace(b"\xe2\x98\x83", b"\xff\xfe"))
                                 for name, body in _with_each_string(op, '"\u2603"'))),
    "lone_surrogate": ("application/json", lambda op: _with_each_string(op, '"a\\ud800b"')),
    "raw_surrogate": ("application/json", lambda op: _with_each_string(op, '"a\ud800b"')),
    "nul": ("application/json", lambda op: _with_each_string(op, '"a\\u0000b"')),
    "huge_string": ("application/json",
                    lambda op: _with_each_string(op, json.dumps("x" * 1_000_000))),
    "deeply_nested": ("application/json",
                      lambda op: iter([("body", b"[" * 10_000 + b"]" * 10_000),
                                       ("field", _nested(10_000))])),
    "nan": ("application/json", lambda op: iter([("body", b'{"count": NaN}')])),
    "wrong_content_type": ("text/plain", lambda op: iter([
        ("body", json.dumps(SAMPLES.get(op.operation_id, {})).encode())])),
    "form_content_type": ("application/x-www-form-urlencoded",
                          lambda op: iter([("body", b"key=value&code=1")])),
    "oversized": ("application/json", lambda op: iter([
        ("body", json.dumps({"text": "x" * django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE})
         .encode())])),
}

# Encoded into a path or query value: NUL, invalid UTF-8, a lone surrogate (CESU bytes), 1 KB.
PARAM_INPUTS = {"nul": "%00", "invalid_utf8": "%FF%FE", "lone_surrogate": "%ED%A0%80",
                "long": quote("\u00e9" * 600)}


class Caller:
    def __init__(self, user: User) -> None:
        self.client = Client(raise_request_exception=False)
        self.client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        otp_verify(self.client, user)
        self.client.cookies[django_settings.CSRF_COOKIE_NAME] = CSRF

    def call(self, op: Operation, url: str, body: bytes | None = None,
             content_type: str = "application/json", headers: dict[str, str] | None = None
             ) -> Any:
        sent = {"X-CSRFToken": CSRF, **(headers or {})}
        if op.path.startswith("/api/bot/"):
            sent.setdefault("X-Discord-User-Id", str(BOT_INVOKER))
            sent["Authorization"] = f"Bearer {django_settings.BOT_API_TOKEN}"
        if body is None:
            return self.client.generic(op.method.upper(), url, headers=sent)
        return self.client.generic(op.method.upper(), url, data=body, content_type=content_type,
                                   headers=sent)


@pytest.fixture
def caller(roles: Any, settings: Any) -> Caller:
    big = {scope: Rate(count=100_000, seconds=60) for scope in settings.ZSPB.rate_limits}
    settings.ZSPB = replace(settings.ZSPB, rate_limits=big)
    settings.AXES_ENABLED = False
    UserFactory.create(username="malformed_bot", role=roles["admin"], discord_id=BOT_INVOKER)
    return Caller(UserFactory.create(username="malformed_admin", role=roles["admin"]))


def _signed_refusal(response: Any) -> bool:
    payload = json.loads(base64.b64decode(response.json()["payload"]))
    return payload.get("valid") is False


def assert_refused(op: Operation, response: Any, what: str) -> None:
    label = f"{op.operation_id} ({what}): {response.status_code} {response.content[:300]!r}"
    if response.status_code == 200 and op.operation_id in SIGNED_REFUSALS:
        assert _signed_refusal(response), label
        return
    assert 400 <= response.status_code < 500, label
    assert response["Content-Type"].startswith("application/json"), label
    body = response.json()
    assert set(body) == {"code", "message", "details"}, label
    assert isinstance(body["code"], str) and isinstance(body["message"], str), label
    assert isinstance(body["details"], dict), label


def assert_no_failure(op: Operation, response: Any, what: str) -> None:
    """For an operation that reads no body: it may ignore one, but must not fail on it."""
    if response.status_code >= 400:
        assert_refused(op, response, what)


def test_every_body_operation_has_a_sample() -> None:
    assert {op.operation_id for op in OPERATIONS if op.reads_body} == set(SAMPLES)


@pytest.mark.parametrize("name", list(BODY_INPUTS))
@pytest.mark.parametrize("op", [op for op in OPERATIONS if op.reads_body],
                         ids=lambda op: op.operation_id)
def test_malformed_body(op: Operation, name: str, caller: Caller) -> None:
    content_type, cases = BODY_INPUTS[name]
    for what, body in cases(op):
        response = caller.call(op, op.url(), body, content_type)
        assert_refused(op, response, f"{name} in {what}")
        if name == "oversized":
            assert response.status_code == 413, response.content
        if name == "wrong_content_type":
            assert response.status_code == 415, response.content


@pytest.mark.parametrize("op", [op for op in OPERATIONS if not op.reads_body],
                         ids=lambda op: op.operation_id)
def test_a_body_where_none_is_read_breaks_nothing(op: Operation, caller: Caller) -> None:
    for name, (content_type, cases) in BODY_INPUTS.items():
        for what, body in cases(op):
            response = caller.call(op, op.url(), body, content_type)
            assert_no_failure(op, response, f"{name} in {what}")


PARAMETERISED = [op for op in OPERATIONS if op.parameters]


@pytest.mark.parametrize("name", list(PARAM_INPUTS))
@pytest.mark.parametrize("op", PARAMETERISED, ids=lambda op: op.operation_id)
def test_malformed_parameters(op: Operation, name: str, caller: Caller) -> None:
    value = PARAM_INPUTS[name]
    body = json.dumps(SAMPLES[op.operation_id]).encode() if op.reads_body else None
    for where, param in op.parameters:
        if where == "path":
            response = caller.call(op, op.url({param: value}), body)
        elif where == "query":
            response = caller.call(op, op.url(query=f"{param}={value}"), body)
        else:
            # Header values travel as latin-1 text: the decoded bytes, as a server sees them.
            raw = bytes.fromhex(value.replace("%", "")) if "%" in value[:1] else value.encode()
            response = caller.call(op, op.url(), body,
                                   headers={param: raw.decode("latin-1")})
        assert_refused(op, response, f"{name} in {where} {param}")
