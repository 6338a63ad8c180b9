"""Start-up: settings validation, entry point exit codes, intents, permission and hierarchy."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from botapp import __main__ as entry
from botapp.bot import ZspbBot, bot_intents
from botapp.checks import check_guild, check_intents
from botapp.settings import SettingsError, load_settings
from tests.botapp.conftest import TOKEN, FakeGuild, StubApi, async_test, stub_api

VALID = {"DISCORD_BOT_TOKEN": "MTIz.abc.def", "DISCORD_GUILD_ID": "123456789012345678",
         "BOT_API_TOKEN": TOKEN}


def test_settings_defaults() -> None:
    settings = load_settings(VALID)
    assert settings.guild_id == 123456789012345678
    assert settings.api_base == "http://127.0.0.1:8000/api"
    assert settings.site_url == "http://127.0.0.1:8000"
    assert settings.api_timeout == 10.0
    assert settings.warnings == ()
    # Secrets never show in logs or tracebacks.
    assert TOKEN not in repr(settings) and "MTIz" not in repr(settings)


def test_settings_read_the_optional_variables() -> None:
    settings = load_settings({**VALID, "ZSPB_API_BASE": "https://zspb.example.com/api/",
                              "ZSPB_API_TIMEOUT": "3.5", "LOG_LEVEL": "debug"})
    assert settings.api_base == "https://zspb.example.com/api"
    assert settings.site_url == "https://zspb.example.com"
    assert (settings.api_timeout, settings.log_level) == (3.5, "DEBUG")
    assert load_settings({**VALID, "SITE_URL": "https://a.example/"}).site_url == (
        "https://a.example")


def test_settings_name_every_problem_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"DISCORD_GUILD_ID": "my-server", "BOT_API_TOKEN": "short",
                       "ZSPB_API_BASE": "ftp://x", "ZSPB_API_TIMEOUT": "0",
                       "LOG_LEVEL": "LOUD"})
    message = str(caught.value)
    for name in ("DISCORD_BOT_TOKEN must be set", "DISCORD_GUILD_ID must be a Discord id",
                 "BOT_API_TOKEN must be at least 32", "ZSPB_API_BASE must be an http(s) URL",
                 "ZSPB_API_TIMEOUT must be between 1 and 60", "LOG_LEVEL must be one of"):
        assert name in message, message


@pytest.mark.parametrize(("name", "value"), [
    ("DISCORD_GUILD_ID", ""), ("DISCORD_GUILD_ID", "0123"), ("DISCORD_GUILD_ID", "9" * 20),
    ("BOT_API_TOKEN", ""), ("DISCORD_BOT_TOKEN", "a b"), ("ZSPB_API_TIMEOUT", "soon"),
    ("ZSPB_API_BASE", "127.0.0.1:8000/api"),
])
def test_settings_refuse(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({**VALID, name: value})


def test_plain_http_to_another_host_is_warned_about() -> None:
    settings = load_settings({**VALID, "ZSPB_API_BASE": "http://10.0.0.5:8000/api"})
    assert "unencrypted" in settings.warnings[0]


def _clear_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Set first, so that undoing restores "absent" even for values python-dotenv sets later.
    for name in (*VALID, "ZSPB_API_BASE", "SITE_URL"):
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)


def test_entry_point_refuses_bad_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    _clear_env(monkeypatch)
    monkeypatch.setenv("ZSPB_ENV_FILE", str(tmp_path / "absent.env"))
    assert entry.main() == entry.CONFIG_ERROR
    assert "DISCORD_BOT_TOKEN must be set" in capsys.readouterr().err


def test_entry_point_reads_the_env_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    _clear_env(monkeypatch)
    env_file = tmp_path / "bot.env"
    env_file.write_text(f"DISCORD_BOT_TOKEN=a.b.c\nDISCORD_GUILD_ID=not-digits\n"
                        f"BOT_API_TOKEN={TOKEN}\n")
    monkeypatch.setenv("ZSPB_ENV_FILE", str(env_file))
    assert entry.main() == entry.CONFIG_ERROR
    err = capsys.readouterr().err
    assert "'not-digits'" in err and "DISCORD_BOT_TOKEN" not in err


def test_intents_are_minimal_with_members() -> None:
    intents = bot_intents()
    assert intents.members and intents.guilds
    assert not intents.message_content and not intents.presences
    assert check_intents(intents) == []
    intents.members = False
    assert "GUILD_MEMBERS" in check_intents(intents)[0]


def _guild() -> FakeGuild:
    guild = FakeGuild(900, bot_position=50)
    guild.role(10, "User", 10)
    guild.role(11, "Support", 49)
    guild.role(12, "Admin", 51)
    guild.role(13, "Booster", 5, managed=True)
    return guild


def test_hierarchy_report_names_each_unmanageable_role() -> None:
    report = check_guild(_guild(), [10, 11, 12, 13, 14, 900])
    assert report.problems == []
    assert sorted(report.unmanageable) == [12, 13, 14, 900]
    assert "drag the bot's role above it" in report.unmanageable[12]
    assert "integration" in report.unmanageable[13]
    assert "no such role" in report.unmanageable[14]
    assert "@everyone" in report.unmanageable[900]
    assert check_guild(_guild(), [10, 11]).ok


def test_missing_manage_roles_permission() -> None:
    guild = _guild()
    guild.me.guild_permissions.manage_roles = False
    assert "Manage Roles" in check_guild(guild, [10]).problems[0]


def _roles(stub: StubApi, managed: list[int]) -> None:
    stub.on("GET", "/members/42/roles", {"discord_id": "42", "linked": False, "wanted": [],
                                         "managed": [str(role) for role in managed]})


@async_test
async def test_bot_startup_report(caplog: pytest.LogCaptureFixture,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    async with stub_api() as (stub, api):
        _roles(stub, [10, 12])
        bot = ZspbBot(load_settings(VALID), api=api)
        guild = _guild()
        monkeypatch.setattr(bot, "get_guild",
                            lambda guild_id: guild if guild_id == 123456789012345678 else None)
        report = await bot.startup_report()
        with caplog.at_level(logging.ERROR, logger="botapp.checks"):
            report.log()
        await bot.close()
    assert report.problems == [] and list(report.unmanageable) == [12]
    assert "cannot manage role 12" in caplog.text
    # The bot asked for its own (never linked) id: only the managed set matters.
    assert stub.last().path == "/members/42/roles"
    assert "X-Discord-User-Id" not in stub.last().headers


@async_test
async def test_bot_startup_report_without_guild_or_site(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async with stub_api() as (stub, api):
        bot = ZspbBot(load_settings(VALID), api=api)
        monkeypatch.setattr(bot, "get_guild", lambda guild_id: None)
        missing = await bot.startup_report()
        monkeypatch.setattr(bot, "get_guild", lambda guild_id: _guild())
        stub.on("GET", "/members/42/roles", {"oops": 1})
        unreadable = await bot.startup_report()
        await bot.close()
    assert "not in the server 123456789012345678" in missing.problems[0]
    assert "hierarchy was not checked" in unreadable.problems[0]
