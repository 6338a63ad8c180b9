from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_required, env_snowflake, env_str, env_url


def test_str_and_required(monkeypatch):
    monkeypatch.delenv("ZSPB_X", raising=False)
    assert env_str("ZSPB_X", "fallback") == "fallback"
    with pytest.raises(ImproperlyConfigured, match="ZSPB_X must be set"):
        env_required("ZSPB_X")
    monkeypatch.setenv("ZSPB_X", "  value ")
    assert env_required("ZSPB_X") == "value"


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("yes", True), ("off", False),
                                               ("FALSE", False)])
def test_bool(monkeypatch, raw, expected):
    monkeypatch.setenv("ZSPB_B", raw)
    assert env_bool("ZSPB_B", default=not expected) is expected


@pytest.mark.parametrize(
    ("func", "raw", "message"),
    [
        (lambda: env_bool("ZSPB_V", False), "maybe", "must be a boolean"),
        (lambda: env_int("ZSPB_V", 1), "ten", "must be an integer"),
        (lambda: env_int("ZSPB_V", 1, minimum=1), "0", "must be >= 1"),
        (lambda: env_url("ZSPB_V", schemes=("postgres",)), "mysql://x/db", "scheme postgres"),
        (lambda: env_snowflake("ZSPB_V"), "12ab", "Discord id"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch, func, raw, message):
    monkeypatch.setenv("ZSPB_V", raw)
    with pytest.raises(ImproperlyConfigured, match=f"ZSPB_V.*{message}"):
        func()


def test_list_and_url(monkeypatch):
    monkeypatch.setenv("ZSPB_L", "a, b,,c ")
    assert env_list("ZSPB_L") == ["a", "b", "c"]
    monkeypatch.setenv("ZSPB_U", "redis://127.0.0.1:6379/1")
    assert env_url("ZSPB_U", schemes=("redis",)) == "redis://127.0.0.1:6379/1"
    monkeypatch.setenv("ZSPB_S", "123456789012345678")
    assert env_snowflake("ZSPB_S") == 123456789012345678
