"""The bot's hand-written answer records against the site's OpenAPI schema.

For every API client method: the fields it reads (recorded while it parses an answer made from
the schema) are exactly the ones declared below with the JSON type the bot assumes; each exists
in the operation's 200 schema with that type; a field read with `data[...]` is required and
never null there, and the method still parses when every optional or nullable field is null.
A renamed, retyped or newly nullable field on the site fails here rather than in Discord.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from api.api import api as site_api
from botapp.api_client import BotApiClient

STRING = ("string", None)
DATETIME = ("string", "date-time")
UUID = ("string", "uuid")
INTEGER = ("integer", None)
BOOLEAN = ("boolean", None)
STRINGS = ("array", "string")
# Snowflakes travel as strings; the bot turns them into ints.
SNOWFLAKE = STRING
SNOWFLAKES = STRINGS

Call = Callable[[BotApiClient], Awaitable[Any]]

# method -> (operationId, the client's call, {field path: (JSON type, format or item type)}).
# A path "a[].b" is field b of each item of the array a.
RECORDS: dict[str, tuple[str, Call, dict[str, tuple[str, str | None]]]] = {
    "link_code": ("bot_link_code_create",
                  lambda c: c.link_code(invoker=1, discord_username="someone"),
                  {"code": STRING, "expires_at": DATETIME}),
    "redeem": ("bot_key_redeem", lambda c: c.redeem(invoker=1, key="k"),
               {"product": STRING, "product_name": STRING, "expires_at": DATETIME}),
    "generate_keys": ("bot_keys_generate",
                      lambda c: c.generate_keys(invoker=1, product="p", duration_days=1,
                                                count=1),
                      {"batch": UUID, "product": STRING, "duration_days": INTEGER,
                       "codes": STRINGS}),
    "ban": ("bot_ban_create", lambda c: c.ban(invoker=1, target=2, reason="r"),
            {"target_discord_id": SNOWFLAKE, "target_username": STRING, "reason": STRING,
             "created_at": DATETIME, "ends_at": DATETIME}),
    "unban": ("bot_ban_lift", lambda c: c.unban(invoker=1, target=2),
              {"target_discord_id": SNOWFLAKE, "target_username": STRING,
               "lifted_at": DATETIME}),
    "stats": ("bot_user_stats", lambda c: c.stats(invoker=1, target=2),
              {"username": STRING, "role": STRING, "date_joined": DATETIME,
               "invited_by": STRING, "invites_created": INTEGER, "invites_used": INTEGER,
               "invite_quota": INTEGER, "invites_left_this_month": INTEGER,
               "keys_redeemed": INTEGER, "discord_username": STRING, "banned": BOOLEAN,
               "ban_reason": STRING, "ban_ends_at": DATETIME, "subscriptions": ("array", None),
               "subscriptions[].product": STRING, "subscriptions[].product_name": STRING,
               "subscriptions[].started_at": DATETIME, "subscriptions[].expires_at": DATETIME,
               "subscriptions[].active": BOOLEAN}),
    "member_roles": ("bot_member_roles", lambda c: c.member_roles(5),
                     {"discord_id": SNOWFLAKE, "linked": BOOLEAN, "managed": SNOWFLAKES}),
    "member_event": ("bot_member_event", lambda c: c.member_event(5, "join"),
                     {"queued": BOOLEAN}),
}


class Recorder(dict[str, Any]):
    """An answer that notes which fields are read, and how: [] (required) or get (optional)."""

    def __init__(self, data: dict[str, Any], reads: dict[str, str], prefix: str = "") -> None:
        super().__init__({key: _wrap(value, reads, f"{prefix}{key}") for key, value in
                          data.items()})
        self._reads = reads
        self._prefix = prefix

    def __getitem__(self, key: str) -> Any:
        self._reads.setdefault(self._prefix + key, "[]")
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self._reads.setdefault(self._prefix + key, "get")
        return super().get(key, default)


def _wrap(value: Any, reads: dict[str, str], path: str) -> Any:
    if isinstance(value, list):
        return [Recorder(item, reads, f"{path}[].") if isinstance(item, dict) else item
                for item in value]
    return value


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return site_api.get_openapi_schema()


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _answer_schema(schema: dict[str, Any], operation_id: str) -> dict[str, Any]:
    for operations in schema["paths"].values():
        for operation in operations.values():
            if operation.get("operationId") == operation_id:
                responses = operation["responses"]
                ok = responses.get(200) or responses["200"]
                return _resolve(schema, ok["content"]["application/json"]["schema"])
    raise AssertionError(f"no operation {operation_id} in the schema")


def _variants(schema: dict[str, Any], node: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(the non-null form of a property, whether null is allowed)."""
    node = _resolve(schema, node)
    options = [_resolve(schema, option) for option in node.get("anyOf", [node])]
    real = [option for option in options if option.get("type") != "null"]
    assert len(real) == 1, node
    return real[0], len(real) < len(options)


def _property(schema: dict[str, Any], root: dict[str, Any],
              path: str) -> tuple[dict[str, Any], bool, bool]:
    """(the property's non-null schema, required, nullable) for a path like a[].b."""
    node, required, nullable = root, True, False
    for part in path.split("."):
        if part.endswith("[]"):
            part = part[:-2]
        if node.get("type") == "array":
            node = _resolve(schema, node["items"])
        assert part in node.get("properties", {}), f"{path}: no field {part!r}"
        required = part in node.get("required", [])
        node, nullable = _variants(schema, node["properties"][part])
    return node, required, nullable


def _sample(schema: dict[str, Any], node: dict[str, Any], *, nulls: bool) -> Any:
    node, nullable = _variants(schema, node)
    if nulls and nullable:
        return None
    kind = node.get("type")
    if kind == "object":
        return {key: _sample(schema, value, nulls=nulls)
                for key, value in node.get("properties", {}).items()}
    if kind == "array":
        return [_sample(schema, node["items"], nulls=nulls)]
    if kind == "string":
        return {"date-time": "2030-01-01T00:00:00Z", "uuid": str(uuid.uuid4())}.get(
            node.get("format", ""), "123456789012345678")  # digits: a snowflake parses too
    return {"integer": 7, "number": 1.5, "boolean": True}[str(kind)]


def _parse(call: Call, answer: dict[str, Any]) -> dict[str, str]:
    reads: dict[str, str] = {}

    async def request(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return Recorder(answer, reads)

    async def run() -> Any:
        client = BotApiClient("http://127.0.0.1:9/api", "x" * 32)
        client._request = request  # type: ignore[method-assign]
        return await call(client)

    asyncio.run(run())  # a read the answer cannot satisfy raises BotApiError
    return reads


@pytest.mark.parametrize("method", sorted(RECORDS))
def test_records_match_the_openapi_schema(schema: dict[str, Any], method: str) -> None:
    operation_id, call, expected = RECORDS[method]
    root = _answer_schema(schema, operation_id)
    reads = _parse(call, _sample(schema, root, nulls=False))
    assert set(reads) == set(expected), "the table above is out of date with api_client.py"
    for path, (kind, detail) in expected.items():
        node, required, nullable = _property(schema, root, path)
        assert node.get("type") == kind, f"{method}: {path} is {node.get('type')}, not {kind}"
        if kind == "array":
            if detail is not None:
                assert _resolve(schema, node["items"]).get("type") == detail, (method, path)
        elif detail is not None:
            assert node.get("format") == detail, f"{method}: {path} format"
        if reads[path] == "[]":
            assert required and not nullable, (
                f"{method}: the bot requires {path}, which the schema lets be absent or null")
    # Whatever the schema lets be null, the bot survives.
    _parse(call, _sample(schema, root, nulls=True))


def test_every_client_method_is_checked() -> None:
    public = {name for name in vars(BotApiClient) if not name.startswith("_")} - {"close"}
    assert public == set(RECORDS)
