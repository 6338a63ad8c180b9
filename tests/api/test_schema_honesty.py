"""The OpenAPI schema says what the server accepts (issue 11, schema honesty).

schemathesis' positive-data check calls every operation with schema-valid input only: the
answer may refuse on domain grounds (401, 403, 404, 409, 429: wrong account, missing object,
conflict, throttle) but never as malformed (400, 422), never with a server error, and always in
the declared response schema. Operations that cannot pass are listed, with the reason, in
EXCLUDED; values the schema cannot describe (a code that exists, the caller's own password, a
password unlike the username) are filled in by `_fill_real_values`.
The other tests pin the individual mismatches found: limits, integers, 413/414.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.test import Client
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    positive_data_acceptance,
    response_schema_conformance,
)

from api.api import api
from api.errors import URL_MAX
from config.behaviour import Rate
from config.wsgi import application
from core.models import User
from core.services.discord_link import discord_unlink, link_code_create
from core.services.users import USERNAME_MAX, USERNAME_MIN
from tests.api.conftest import assert_error
from tests.factories import InviteFactory, ProductFactory, UserFactory
from tests.staff.conftest import otp_verify

CSRF = "b" * 32  # the cookie and the header only have to match
PASSWORD = "correct horse battery"
STRONG_PASSWORD = "Plover-cactus-9-Oriole"
BOT_INVOKER = 777000222

# operationId -> why schema-valid input cannot always be accepted there. The one place.
EXCLUDED: dict[str, str] = {}

CHECKS = [not_a_server_error, positive_data_acceptance, response_schema_conformance]


def _load_schema() -> Any:
    schema = schemathesis.openapi.from_dict(api.get_openapi_schema())
    schema.app = application
    schema.config.phases.update(phases=["examples", "coverage", "fuzzing"])
    schema.config.generation.update(modes=[GenerationMode.POSITIVE], database="none")
    return schema.exclude(operation_id=list(EXCLUDED)) if EXCLUDED else schema


positive_schema = _load_schema()

HYPOTHESIS = hypothesis_settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


class Caller:
    """Credentials and real values for each case: the session of a staff member who passed
    TOTP (so staff-only operations validate their input too), or the bot's token acting for a
    linked admin. /auth/ operations may end or replace the session (logout, "end other
    sessions", a password change, a login or sign-up in it), so each of them gets a new one."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.product = ProductFactory.create(slug="honest")
        self._cookies: dict[str, str] | None = None

    def session_cookies(self, *, fresh: bool) -> dict[str, str]:
        if self._cookies is None or fresh:
            self.user.refresh_from_db()
            client = Client()
            client.force_login(self.user, backend="django.contrib.auth.backends.ModelBackend")
            otp_verify(client, self.user)
            self._cookies = {
                django_settings.SESSION_COOKIE_NAME:
                    client.cookies[django_settings.SESSION_COOKIE_NAME].value,
                django_settings.CSRF_COOKIE_NAME: CSRF,
            }
        return self._cookies

    def prepare(self, case: Any) -> None:
        operation_id = case.operation.definition.raw["operationId"]
        headers = dict(case.headers or {})
        if case.path.startswith("/api/bot/"):
            headers["Authorization"] = f"Bearer {django_settings.BOT_API_TOKEN}"
            if "X-Discord-User-Id" in headers or operation_id not in (
                    "bot_member_roles", "bot_member_event"):
                headers["X-Discord-User-Id"] = str(BOT_INVOKER)
        else:
            fresh = case.path.startswith("/api/auth/")
            case.cookies = {**(case.cookies or {}), **self.session_cookies(fresh=fresh)}
            headers["X-CSRFToken"] = CSRF
        case.headers = headers
        _fill_real_values(operation_id, case, self)


def _fill_real_values(operation_id: str, case: Any, caller: Caller) -> None:
    """Values a schema cannot make exist: a code that was issued, the caller's own password.
    Every other field keeps what schemathesis generated."""
    body = case.body if isinstance(case.body, dict) else None
    if operation_id in ("auth_register", "auth_change_password") and body is not None:
        # The schema has the validators' length and "not only digits"; likeness to the
        # username and the list of common passwords cannot be written as a schema.
        key = "password" if operation_id == "auth_register" else "new_password"
        body[key] = STRONG_PASSWORD
    if operation_id == "auth_register" and body is not None:
        body["invite"] = InviteFactory.create(created_by=caller.user).code
    elif operation_id == "discord_link" and body is not None:
        caller.user.refresh_from_db(fields=["discord_id"])
        if caller.user.discord_id is not None:
            discord_unlink(user=caller.user)
        body["code"] = link_code_create(discord_id=5_000_000 + caller.user.pk,
                                        discord_username="honest")
    elif operation_id == "auth_change_password" and body is not None:
        caller.user.set_password(PASSWORD)
        caller.user.save(update_fields=["password"])
        body["old_password"] = PASSWORD
    elif operation_id == "bot_keys_generate" and body is not None:
        body["product"] = caller.product.slug


@pytest.fixture
def caller(db: None, roles: Any, settings: Any) -> Caller:
    # Input checks, not brute force: no throttles, and every registration may go through.
    big = {scope: Rate(count=100_000, seconds=60) for scope in settings.ZSPB.rate_limits}
    settings.ZSPB = replace(settings.ZSPB, rate_limits=big, registration_ip_window_hours=0)
    settings.AXES_ENABLED = False
    UserFactory.create(username="bot_invoker", role=roles["admin"], discord_id=BOT_INVOKER)
    return Caller(UserFactory.create(username="honest_admin", role=roles["admin"]))


@pytest.mark.slow
@pytest.mark.django_db
@pytest.mark.usefixtures("keep_test_connection")
@positive_schema.parametrize()
@HYPOTHESIS
def test_schema_valid_input_is_accepted(case: Any, caller: Caller) -> None:
    caller.prepare(case)
    case.call_and_validate(checks=CHECKS)


# --- the individual mismatches of issue 11 -------------------------------------------------


@functools.cache
def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(json.dumps(api.get_openapi_schema()))  # as served
    return schema


def _component(name: str) -> dict[str, Any]:
    properties: dict[str, Any] = _schema()["components"]["schemas"][name]["properties"]
    return properties


def _operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in _schema()["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def _strings(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every string schema under node, resolving the schema's own $refs."""
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            yield from _strings(_schema()["components"]["schemas"][name], f"{where}>{name}")
            return
        if node.get("type") == "string":
            yield where, node
        for key, value in node.items():
            if key not in ("default", "example", "examples"):
                yield from _strings(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, f"{where}[{index}]")


def test_every_input_string_has_a_real_length_limit() -> None:
    found = []
    for path, method, operation in _operations():
        inputs = [operation.get("requestBody", {}), *operation.get("parameters", [])]
        for where, string in _strings(inputs, f"{method.upper()} {path}"):
            found.append(where)
            assert string.get("maxLength") or string.get("enum") or string.get("const"), where
    assert len(found) > 30  # the walk really reached the bodies and parameters


def test_register_limits_are_the_services() -> None:
    username = _component("RegisterIn")["username"]
    assert (username["minLength"], username["maxLength"]) == (USERNAME_MIN, USERNAME_MAX)
    password = _component("RegisterIn")["password"]
    assert password["minLength"] == 10  # AUTH_PASSWORD_VALIDATORS' MinimumLengthValidator
    assert _component("PasswordIn")["new_password"]["minLength"] == 10


def _register(api_client: Any, **fields: Any) -> Any:
    body = {"invite": "INV-" + "0" * 20, "username": "fresh_one",
            "password": "a fine passphrase", **fields}
    return api_client.post("/api/auth/register", body)


@pytest.mark.django_db
def test_a_one_letter_username_is_refused_by_the_schema_itself(api_as: Any) -> None:
    body = assert_error(_register(api_as(), username="a"), 422, "invalid_input")
    assert body["details"]["errors"][0]["loc"] == ["body", "body", "username"]
    body = assert_error(_register(api_as(), password="1234567890123"), 422, "invalid_input")
    assert body["details"]["errors"][0]["loc"] == ["body", "body", "password"]
    body = assert_error(_register(api_as(), email="not-an-email"), 422, "invalid_input")
    assert body["details"]["errors"][0]["loc"] == ["body", "body", "email"]


@pytest.mark.django_db
def test_unicode_usernames_the_service_takes_pass_the_schema(api_as: Any, admin: User,
                                                             settings: Any) -> None:
    # `\w` means Python's: str.isalnum() plus "_", the very rule of the service.
    settings.ZSPB = replace(settings.ZSPB, registration_ip_window_hours=0)
    for name in ("пётр_1", "x²y", "a.b-c"):
        invite = InviteFactory.create(created_by=admin)
        response = api_as().post("/api/auth/register", {
            "invite": invite.code.lower(), "username": name, "password": "a fine passphrase"})
        assert response.status_code == 201, (name, response.content)


@pytest.mark.django_db
def test_link_code_length_is_in_the_schema(api_as: Any, member: User) -> None:
    code = _component("LinkIn")["code"]
    assert (code["minLength"], code["maxLength"]) == (8, 15)  # XXXX-XXXX, a separator each
    client = api_as(member)
    for malformed in ("ABC", "ABCD-EFGH-J", "UUUU-UUUU", "ABCD\x00EFGH"):
        assert_error(client.post("/api/discord/link", {"code": malformed}), 422,
                     "invalid_input")
    # well formed but unknown: the service's own refusal (journaled and throttled)
    assert_error(client.post("/api/discord/link", {"code": "abcd efgh"}), 400,
                 "link_code_invalid")


@pytest.mark.django_db
def test_whole_number_floats_are_integers(api_as: Any, roles: Any, settings: Any) -> None:
    settings.ZSPB = replace(settings.ZSPB, rate_limits={
        scope: Rate(count=1000, seconds=60) for scope in settings.ZSPB.rate_limits})
    UserFactory.create(username="bot_admin", role=roles["admin"], discord_id=BOT_INVOKER)
    product = ProductFactory.create(slug="floaty")
    client = Client()
    headers = {"Authorization": f"Bearer {django_settings.BOT_API_TOKEN}",
               "X-Discord-User-Id": str(BOT_INVOKER)}

    def generate(**fields: Any) -> Any:
        body = {"product": product.slug, "duration_days": 30, "count": 1, **fields}
        return client.post("/api/bot/keys", json.dumps(body), content_type="application/json",
                           headers=headers)

    accepted = generate(duration_days=30.0, count=2.0)
    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["duration_days"] == 30 and len(accepted.json()["codes"]) == 2
    for refused in ({"count": 1.5}, {"count": True}, {"count": "1"}, {"count": 101.0},
                    {"count": float("nan")}):
        assert generate(**refused).status_code in (400, 422), refused


@pytest.mark.django_db
def test_long_addresses_answer_a_declared_414(api_as: Any, member: User) -> None:
    for _path, _method, operation in _operations():
        assert "414" in operation["responses"], operation["operationId"]
    response = api_as(member).get("/api/invites?limit=10&pad=" + "x" * URL_MAX)
    body = assert_error(response, 414, "uri_too_long")
    assert body["details"] == {"max_length": URL_MAX}
    russian = api_as(member).get("/api/invites?pad=" + "x" * URL_MAX, HTTP_ACCEPT_LANGUAGE="ru")
    assert assert_error(russian, 414)["message"] == "Адрес слишком длинный."
    assert api_as(member).get("/api/invites?limit=10&pad=" + "x" * 3000).status_code == 200


@pytest.mark.django_db
def test_oversized_bodies_answer_a_declared_413(api_as: Any, member: User) -> None:
    for _path, _method, operation in _operations():
        declared = {"413", "415"} <= set(operation["responses"])
        assert declared == ("requestBody" in operation), operation["operationId"]
    big = "x" * (django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    body = assert_error(api_as(member).post("/api/keys/redeem", {"key": big}), 413,
                        "request_too_large")
    assert body["details"] == {"max_bytes": django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE}
