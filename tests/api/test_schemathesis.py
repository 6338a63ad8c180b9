"""Property-based fuzzing of the whole API from its own OpenAPI schema.

Every operation is called in all generation phases (examples, coverage, fuzzing) with valid and
invalid input, as a logged-in member and as the bot. No answer may be a server error, every
answer must match the declared schema, and an operation that declares auth must refuse the
caller when schemathesis strips or corrupts the credentials (ignored_auth check).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.test import Client
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from config.behaviour import Rate
from config.wsgi import application

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("keep_test_connection")]

CSRF = "a" * 32  # any 32-character token: the cookie and the header only have to match
# The credentials of the running test; the auth providers read them on every call (no cache:
# each test's database, and so each session, is new).
CURRENT: dict[str, Any] = {}


def _load_schema(path_regex: str | None = None) -> Any:
    from api.api import api

    schema = schemathesis.openapi.from_dict(api.get_openapi_schema())
    schema.app = application
    schema.config.phases.update(phases=["examples", "coverage", "fuzzing", "stateful"])
    return schema.include(path_regex=path_regex) if path_regex else schema


member_schema = _load_schema()
bot_schema = _load_schema(path_regex="^/api/bot/")


@member_schema.auth(refresh_interval=None)
class MemberSession:
    def get(self, case: Any, context: Any) -> dict[str, str]:
        return dict(CURRENT.get("cookies", {}))

    def set(self, case: Any, data: dict[str, str], context: Any) -> None:
        case.cookies = {**(case.cookies or {}), **data}
        case.headers = {**(case.headers or {}), "X-CSRFToken": CSRF}


@bot_schema.auth(refresh_interval=None)
class BotToken:
    def get(self, case: Any, context: Any) -> str:
        return str(django_settings.BOT_API_TOKEN)

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


# Here schema-valid input carries made-up invites and link codes, which the services refuse
# with 400 by design; test_schema_honesty.py runs the positive-data check with real ones (and
# lists the operations that cannot pass). Every other check runs here, including server
# errors, response schema conformance, status codes, content type and ignored auth.
EXCLUDED = [positive_data_acceptance]

HYPOTHESIS = hypothesis_settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


@pytest.fixture
def _roomy_limits(settings: Any) -> None:
    # Fuzzing is not brute force: lift throttles so every example reaches the handler.
    big = {scope: Rate(count=100_000, seconds=60) for scope in settings.ZSPB.rate_limits}
    settings.ZSPB = replace(settings.ZSPB, rate_limits=big)
    settings.AXES_ENABLED = False


@pytest.fixture
def as_member(db: None, roles: Any, _roomy_limits: None) -> None:
    from tests.factories import UserFactory

    user = UserFactory.create(username="fuzzed", role=roles["user"])
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    CURRENT["cookies"] = {
        django_settings.SESSION_COOKIE_NAME: client.cookies[django_settings.SESSION_COOKIE_NAME]
        .value,
        django_settings.CSRF_COOKIE_NAME: CSRF,
    }


@pytest.fixture
def as_bot(db: None, roles: Any, _roomy_limits: None) -> None:
    from tests.factories import UserFactory

    UserFactory.create(username="botuser", role=roles["admin"], discord_id=777000111)


@pytest.mark.django_db
@member_schema.parametrize()
@HYPOTHESIS
def test_api_as_member(case: Any, as_member: None) -> None:
    case.call_and_validate(excluded_checks=EXCLUDED)


@pytest.mark.django_db
@bot_schema.parametrize()
@HYPOTHESIS
def test_api_as_bot(case: Any, as_bot: None) -> None:
    case.call_and_validate(excluded_checks=EXCLUDED)


class MemberWorkflow(member_schema.as_state_machine()):
    """Stateful phase: chains calls along the links schemathesis infers (create an invite, then
    revoke it; read my stats, then read a user's stats by the id it returned)."""

    def validate_response(self, response: Any, case: Any, additional_checks: Any = None,
                          **kwargs: Any) -> None:
        case.validate_response(response, excluded_checks=EXCLUDED)


@pytest.mark.django_db
def test_api_stateful_as_member(as_member: None) -> None:
    MemberWorkflow.run(settings=hypothesis_settings(
        max_examples=20, stateful_step_count=6, deadline=None,
        suppress_health_check=list(HealthCheck), derandomize=True,
    ))
    from core.models import LogEntry

    # the workflow really walked the member's resources, not only refused calls
    assert LogEntry.objects.filter(action="invite.create").exists()
