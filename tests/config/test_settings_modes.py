"""config/settings.py under given environments, each in a fresh interpreter.

The settings module runs once per process, so every case starts Python with an environment
built from scratch (no .env, no inherited DATABASE_URL/REDIS_URL/DEBUG from the test run).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
REDIS = "redis://127.0.0.1:6379/0"  # never connected to: settings and checks only

# Prints the settings the tests look at; anything raised ends the process with its message.
_PROBE = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "EMBEDDED_DEFAULT": settings.EMBEDDED_DEFAULT,
    "CACHE": settings.CACHES["default"]["BACKEND"],
    "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
    "SSL_REDIRECT": settings.SECURE_SSL_REDIRECT,
    "HSTS": settings.SECURE_HSTS_SECONDS,
    "COOKIES_SECURE": [settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE],
    "PROXY_SSL_HEADER": getattr(settings, "SECURE_PROXY_SSL_HEADER", None),
    "ACCEL": settings.LOADER_ACCEL_REDIRECT_PREFIX,
}))
"""


def production_env(tmp_path: Path) -> dict[str, str]:
    """A server configured only through its environment (as a systemd EnvironmentFile)."""
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DIGEST_SECRET": secrets.token_urlsafe(32),
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "BOT_API_TOKEN": secrets.token_urlsafe(32),
        "LICENSE_SIGNING_KEY": secrets.token_hex(32),
        "DATABASE_URL": os.environ.get("DATABASE_URL")
        or f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "REDIS_URL": os.environ.get("REDIS_URL") or REDIS,
        "ALLOWED_HOSTS": "zspb.example.test",
        "SITE_URL": "https://zspb.example.test",
        # Discord is part of a real installation (zspb.W001 warns without it); loopback only.
        "DISCORD_BOT_TOKEN": secrets.token_urlsafe(40),
        "DISCORD_GUILD_ID": "123456789012345678",
        "DISCORD_API_BASE": "http://127.0.0.1:9/api/v10",
    }


def _run(tmp_path: Path, env: dict[str, str], *args: str,
         env_file: str | None = None) -> subprocess.CompletedProcess[str]:
    env_path = tmp_path / "site.env"
    if env_file is not None:
        env_path.write_text(env_file, encoding="utf-8")
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "ZSPB_VAR_DIR": str(tmp_path / "var"),
        # The clone's own .env (if any) must not leak into the case.
        "ZSPB_ENV_FILE": str(env_path),
    }
    return subprocess.run([sys.executable, *args], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=120, check=False)


def _settings(tmp_path: Path, env: dict[str, str], env_file: str | None = None) -> Any:
    result = _run(tmp_path, env, "-c", _PROBE, env_file=env_file)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _error(tmp_path: Path, env: dict[str, str]) -> str:
    result = _run(tmp_path, env, "-c", _PROBE)
    assert result.returncode != 0, result.stdout
    return result.stderr


def test_nothing_configured_is_the_embedded_default_with_debug(tmp_path):
    got = _settings(tmp_path, {})
    assert got["DEBUG"] is True and got["EMBEDDED_DEFAULT"] is True
    assert got["CACHE"].endswith("LocMemCache")
    assert got["ALLOWED_HOSTS"] == ["127.0.0.1", "localhost"]
    assert got["SSL_REDIRECT"] is False and got["HSTS"] == 0
    assert got["COOKIES_SECURE"] == [False, False]
    assert (tmp_path / "var" / "local-secrets.json").is_file()


def test_database_and_cache_urls_alone_keep_the_embedded_default(tmp_path):
    # As `make test`, CI and a local trial on PostgreSQL run: connections, no secrets.
    got = _settings(tmp_path, {"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
                               "REDIS_URL": REDIS})
    assert got["DEBUG"] is True and got["EMBEDDED_DEFAULT"] is True


def test_a_server_configured_only_by_its_environment_runs_without_debug(tmp_path):
    got = _settings(tmp_path, production_env(tmp_path))
    assert got["DEBUG"] is False and got["EMBEDDED_DEFAULT"] is False
    assert got["CACHE"].endswith("RedisCache")
    assert got["SSL_REDIRECT"] is True and got["HSTS"] >= 31536000
    assert got["COOKIES_SECURE"] == [True, True]
    # nginx overwrites X-Forwarded-Proto with $scheme; Django trusts exactly that header.
    assert got["PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert not (tmp_path / "var" / "local-secrets.json").exists()


@pytest.mark.parametrize("name", ["SECRET_KEY", "ALLOWED_HOSTS", "SITE_URL", "DIGEST_SECRET"])
def test_any_one_production_variable_turns_debug_off(tmp_path, name):
    message = _error(tmp_path, {name: production_env(tmp_path)[name]})
    # DEBUG is off, so the missing secrets are named instead of being generated.
    assert "ImproperlyConfigured" in message and "must be set when DEBUG is off" in message


def test_a_dotenv_file_turns_debug_off(tmp_path):
    lines = "".join(f"{k}={v}\n" for k, v in production_env(tmp_path).items())
    got = _settings(tmp_path, {}, env_file=lines)
    assert got["DEBUG"] is False and got["EMBEDDED_DEFAULT"] is False


def test_debug_can_still_be_turned_on_explicitly(tmp_path):
    got = _settings(tmp_path, {**production_env(tmp_path), "DEBUG": "1"})
    assert got["DEBUG"] is True and got["EMBEDDED_DEFAULT"] is False


def test_debug_off_without_redis_is_a_start_up_error(tmp_path):
    env = production_env(tmp_path)
    del env["REDIS_URL"]
    message = _error(tmp_path, env)
    assert "ImproperlyConfigured" in message and "REDIS_URL" in message


def test_https_can_be_turned_off_for_a_server_without_a_domain(tmp_path):
    got = _settings(tmp_path, {**production_env(tmp_path), "HTTPS": "0"})
    assert got["DEBUG"] is False
    assert got["SSL_REDIRECT"] is False and got["HSTS"] == 0
    assert got["COOKIES_SECURE"] == [False, False]


def test_accel_redirect_prefix_must_be_an_absolute_path(tmp_path):
    got = _settings(tmp_path, {"LOADER_ACCEL_REDIRECT_PREFIX": "/protected-loader/"})
    assert got["ACCEL"] == "/protected-loader"
    message = _error(tmp_path, {"LOADER_ACCEL_REDIRECT_PREFIX": "protected"})
    assert "LOADER_ACCEL_REDIRECT_PREFIX" in message


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = _run(tmp_path, production_env(tmp_path), "manage.py", "check", "--deploy",
                  "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_warns_loudly_when_https_is_off(tmp_path):
    result = _run(tmp_path, {**production_env(tmp_path), "HTTPS": "0"}, "manage.py", "check",
                  "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in output


# Headers a production response carries: HSTS, CSP, the redirect to HTTPS unless nginx says
# the request came over HTTPS. No database or cache is touched (the liveness endpoint).
_RESPONSE_PROBE = """
import json, django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="zspb.example.test")
plain = client.get("/login")
secure = client.get("/api/health/live", HTTP_X_FORWARDED_PROTO="https")
probe = client.get("/api/health/live")
print(json.dumps({
    "plain_status": plain.status_code, "plain_location": plain.get("Location"),
    "secure_status": secure.status_code, "probe_status": probe.status_code,
    "hsts": secure.get("Strict-Transport-Security"),
    "csp": secure.get("Content-Security-Policy"),
}))
"""


def test_production_responses_redirect_to_https_and_carry_hsts_and_csp(tmp_path):
    result = _run(tmp_path, production_env(tmp_path), "-c", _RESPONSE_PROBE)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["plain_status"] == 301
    assert got["plain_location"] == "https://zspb.example.test/login"
    assert got["secure_status"] == 200
    assert got["probe_status"] == 200  # load balancers may probe over plain HTTP
    assert got["hsts"] == "max-age=31536000; includeSubDomains"
    assert "script-src 'self'" in got["csp"]
