"""The API client on its own: headers, typed answers, and the mapping of every failure."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from botapp.api_client import (
    BAD_RESPONSE,
    UNREACHABLE,
    BotApiClient,
    BotApiError,
    parse_datetime,
)
from tests.botapp.conftest import (
    TOKEN,
    Scripted,
    api_error,
    async_test,
    closed_port_url,
    stub_api,
)


def test_parse_datetime_accepts_what_the_site_sends() -> None:
    utc = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
    assert parse_datetime("2030-01-01T12:00:00Z") == utc
    assert parse_datetime("2030-01-01T12:00:00.000000Z") == utc
    assert parse_datetime("2030-01-01T14:00:00+02:00") == utc
    assert parse_datetime("2030-01-01T12:00:00") == utc  # naive: taken as UTC
    assert parse_datetime("2030-01-01T14:00:00+02:00").utcoffset() == timedelta(hours=2)


@async_test
async def test_member_calls_carry_no_invoker_and_commands_do() -> None:
    async with stub_api() as (stub, api):
        stub.on("GET", "/members/5/roles", {"discord_id": "5", "linked": True,
                                            "wanted": ["10"], "managed": ["10", "11"]})
        stub.on("POST", "/members/5/events", {"queued": True})
        roles = await api.member_roles(5)
        queued = await api.member_event(5, "join")
        stub.on("POST", "/redeem", {"product": "p", "product_name": "P",
                                    "expires_at": "2030-01-01T00:00:00Z"})
        await api.redeem(invoker=7, key="k")
    assert roles.linked and roles.managed == {10, 11}
    assert queued is True
    first, second, third = stub.requests
    assert "X-Discord-User-Id" not in first.headers and "X-Discord-User-Id" not in second.headers
    assert second.body == {"event": "join"}
    assert third.headers["X-Discord-User-Id"] == "7"
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in stub.requests)


@pytest.mark.parametrize(("answer", "code", "status", "retry_after"), [
    (api_error(403, "forbidden", "No."), "forbidden", 403, None),
    (api_error(429, "rate_limited", "Slow.", retry_after=30), "rate_limited", 429, 30.0),
    # The header alone, or the details alone, are enough.
    (Scripted(429, {"code": "rate_limited", "message": "Slow.", "details": {}},
              {"Retry-After": "7"}), "rate_limited", 429, 7.0),
    (Scripted(429, {"code": "rate_limited", "message": "Slow.",
                    "details": {"retry_after": 3}}), "rate_limited", 429, 3.0),
    (Scripted(429, raw=b"slow down"), "http_429", 429, None),
    (Scripted(503, raw=b"<html>maintenance</html>"), UNREACHABLE, 503, None),
    (Scripted(500, {"code": "internal_error", "message": "Oops.", "details": {}}),
     "internal_error", 500, None),
    (Scripted(418, raw=b"teapot"), "http_418", 418, None),
    (Scripted(200, raw=b"not json"), BAD_RESPONSE, 200, None),
    (Scripted(200, {"code": 5}), BAD_RESPONSE, 200, None),
])
@async_test
async def test_failures_map_to_one_error(answer: Scripted, code: str, status: int,
                                         retry_after: float | None) -> None:
    async with stub_api() as (stub, api):
        stub.on_any(answer)
        with pytest.raises(BotApiError) as caught:
            await api.link_code(invoker=1, discord_username="x")
    assert (caught.value.code, caught.value.status, caught.value.retry_after) == (
        code, status, retry_after)


@async_test
async def test_validation_details_are_kept() -> None:
    async with stub_api() as (stub, api):
        stub.on_any(api_error(422, "invalid_input", "Some fields are invalid.",
                              errors=[{"loc": ["body", "count"], "msg": "too big"}]))
        with pytest.raises(BotApiError) as caught:
            await api.generate_keys(invoker=1, product="p", duration_days=1, count=1000)
    assert caught.value.details["errors"][0]["msg"] == "too big"


@async_test
async def test_unreachable_has_no_status() -> None:
    async with BotApiClient(closed_port_url(), TOKEN, timeout=2) as api:
        with pytest.raises(BotApiError) as caught:
            await api.stats(invoker=1, target=1)
    assert caught.value.unreachable and caught.value.status is None
    assert caught.value.code == UNREACHABLE


@async_test
async def test_client_reopens_after_close() -> None:
    async with stub_api() as (stub, api):
        stub.on_any(Scripted(200, {"queued": False}))
        assert await api.member_event(1, "update") is False
        await api.close()
        await api.close()
        assert await api.member_event(1, "update") is False
