"""Typed access to environment variables.

Every helper raises ImproperlyConfigured naming the variable, so a typo in `.env` stops the
process at start-up instead of surfacing later as a confusing runtime error.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else value.strip()


def any_env_set(names: tuple[str, ...]) -> bool:
    """Whether any of these variables holds a non-blank value."""
    return any(_raw(name) for name in names)


def env_str(name: str, default: str | None) -> str | None:
    return _raw(name) or default


def env_required(name: str) -> str:
    value = _raw(name)
    if not value:
        raise ImproperlyConfigured(f"{name} must be set (see .env.example)")
    return value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {value!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _raw(name)
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum}, got {number}")
    return number


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    value = _raw(name)
    if not value:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


def env_url(name: str, *, schemes: tuple[str, ...], default: str | None = None) -> str | None:
    value = _raw(name) or default
    if not value:
        return None
    parsed = urlparse(value)
    if parsed.scheme not in schemes:
        allowed = ", ".join(schemes)
        raise ImproperlyConfigured(f"{name} must be a URL with scheme {allowed}, got {value!r}")
    if parsed.scheme not in ("sqlite",) and not parsed.hostname and not parsed.path:
        raise ImproperlyConfigured(f"{name} has no host: {value!r}")
    return value


def env_snowflake(name: str) -> int | None:
    """A Discord id: a positive integer of at most 20 digits."""
    value = _raw(name)
    if not value:
        return None
    if not value.isdigit() or len(value) > 20:
        raise ImproperlyConfigured(f"{name} must be a Discord id (digits only), got {value!r}")
    return int(value)


def env_path_prefix(name: str) -> str:
    """An absolute URL path without its trailing slash ("/internal"), or "" when unset."""
    value = (_raw(name) or "").rstrip("/")
    if value and (not value.startswith("/") or "?" in value or "#" in value or ".." in value):
        raise ImproperlyConfigured(f"{name} must be an absolute URL path such as /internal, "
                                   f"got {value!r}")
    return value
