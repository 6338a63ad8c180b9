"""Behaviour settings read from config.yaml into frozen, validated dataclasses.

Secrets never live here; they come from the environment (config/env.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.core.exceptions import ImproperlyConfigured

# Capabilities a role may carry. The rank rules (no one acts on or grants a rank at or above
# their own) apply on top of these.
CAPABILITIES: frozenset[str] = frozenset(
    {
        "view_any_stats",
        "ban_users",
        "generate_keys",
        "manage_users",
        "manage_keys",
        "manage_products",
        "manage_loader",
        "manage_roles",
        "delete_users",
        "set_passwords",
    }
)


@dataclass(frozen=True)
class RoleSpec:
    key: str
    name: str
    rank: int
    invite_quota: int | None
    discord_role_id: int | None = None
    staff: bool = False
    permissions: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class JournalSpec:
    channel_id: int | None = None
    # Entries older than this many days are deleted by the zspb:prune-journals job; None keeps
    # them for ever.
    retention_days: int | None = None


# Journal retention when config.yaml names none: long enough for disputes and moderation
# appeals, short enough that storage follows use rather than traffic.
DEFAULT_JOURNAL_RETENTION_DAYS: dict[str, int] = {"user": 180, "moderation": 730, "error": 90}


# Throttle scopes and their defaults: "N/period", period = s, m, h or d with an optional
# multiplier ("5/10m" is five per ten minutes). Per IP and per account or Discord id.
DEFAULT_RATE_LIMITS: dict[str, str] = {
    "login_ip": "30/10m",
    "register_ip": "10/h",
    "redeem_ip": "30/m",
    "redeem_account": "10/m",
    "link_ip": "30/m",
    "link_account": "10/10m",
    "license_ip": "120/m",
    "license_subject": "30/m",
    "bot_discord": "30/m",
    "bot_code_discord": "5/m",
    "bot_redeem_discord": "10/m",
    "resync_account": "3/10m",
    "password_account": "10/h",
}
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: int


def parse_rate(text: str) -> Rate:
    count, _, period = text.partition("/")
    unit = period[-1:] if period else ""
    multiplier = period[:-1] or "1"
    if not count.isdigit() or unit not in _PERIODS or not multiplier.isdigit():
        raise ValueError(text)
    rate = Rate(count=int(count), seconds=int(multiplier) * _PERIODS[unit])
    if rate.count < 1 or rate.seconds < 1:
        raise ValueError(text)
    return rate


@dataclass(frozen=True)
class Behaviour:
    roles: tuple[RoleSpec, ...]
    default_role: str
    admin_role: str
    invite_expiry_days: int = 7
    link_code_ttl_minutes: int = 15
    registration_ip_window_hours: int = 24
    key_prefix: str = "ZSPB"
    key_batch_max: int = 100_000
    # A member may unbind their own machine once per this many days; 0 = staff only.
    hwid_self_reset_cooldown_days: int = 7
    journals: dict[str, JournalSpec] = field(default_factory=dict)
    rate_limits: dict[str, Rate] = field(
        default_factory=lambda: {k: parse_rate(v) for k, v in DEFAULT_RATE_LIMITS.items()}
    )

    def role(self, key: str) -> RoleSpec:
        for spec in self.roles:
            if spec.key == key:
                return spec
        raise KeyError(key)


def _fail(path: Path, where: str, problem: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{path}: {where}: {problem}")


def _opt_int(path: Path, where: str, value: Any, *, minimum: int = 0) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(path, where, f"expected an integer >= {minimum} or null, got {value!r}")
    return int(value)


def _int(path: Path, where: str, value: Any, *, minimum: int = 0) -> int:
    number = _opt_int(path, where, value, minimum=minimum)
    if number is None:
        raise _fail(path, where, "is required")
    return number


def _snowflake(path: Path, where: str, value: Any) -> int | None:
    # YAML users often quote ids to keep them exact; accept digit strings too.
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return _opt_int(path, where, value, minimum=1)


def _role(path: Path, index: int, raw: Any) -> RoleSpec:
    where = f"roles[{index}]"
    if not isinstance(raw, dict):
        raise _fail(path, where, "each role must be a mapping")
    unknown = set(raw) - {"key", "name", "rank", "invite_quota", "discord_role_id", "staff",
                          "permissions"}
    if unknown:
        raise _fail(path, where, f"unknown fields {sorted(unknown)}")
    key = raw.get("key")
    if not isinstance(key, str) or not key.isidentifier():
        raise _fail(path, where, f"key must be an identifier, got {key!r}")
    perms = raw.get("permissions") or []
    if not isinstance(perms, list) or not set(perms) <= CAPABILITIES:
        bad = sorted(set(perms) - CAPABILITIES) if isinstance(perms, list) else perms
        raise _fail(path, f"{where}.permissions", f"unknown permissions {bad}")
    staff = raw.get("staff", False)
    if not isinstance(staff, bool):
        raise _fail(path, f"{where}.staff", "must be true or false")
    return RoleSpec(
        key=key,
        name=str(raw.get("name") or key.title()),
        rank=_int(path, f"{where}.rank", raw.get("rank"), minimum=1),
        invite_quota=_opt_int(path, f"{where}.invite_quota", raw.get("invite_quota")),
        discord_role_id=_snowflake(path, f"{where}.discord_role_id", raw.get("discord_role_id")),
        staff=staff,
        permissions=frozenset(perms),
    )


def load_behaviour(path: Path) -> Behaviour:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ImproperlyConfigured(f"{path} not found (set ZSPB_CONFIG or restore it)") from None
    except yaml.YAMLError as exc:
        raise ImproperlyConfigured(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise _fail(path, "top level", "must be a mapping")

    raw_roles = data.get("roles")
    if not isinstance(raw_roles, list) or not raw_roles:
        raise _fail(path, "roles", "at least one role is required")
    roles = tuple(_role(path, i, raw) for i, raw in enumerate(raw_roles))
    for attr in ("key", "rank", "name"):
        values = [getattr(r, attr) for r in roles]
        if len(set(values)) != len(values):
            raise _fail(path, "roles", f"duplicate role {attr}")

    keys = {r.key for r in roles}
    default_role = data.get("default_role", roles[0].key)
    admin_role = data.get("admin_role", max(roles, key=lambda r: r.rank).key)
    for name, value in (("default_role", default_role), ("admin_role", admin_role)):
        if value not in keys:
            raise _fail(path, name, f"{value!r} is not one of the roles {sorted(keys)}")

    invites = data.get("invites") or {}
    link = data.get("discord_link") or {}
    registration = data.get("registration") or {}
    keys_cfg = data.get("keys") or {}
    licensing = data.get("licensing") or {}
    prefix = keys_cfg.get("prefix", "ZSPB")
    if not isinstance(prefix, str) or not (prefix.isascii() and prefix.isalnum()) or not (
        1 <= len(prefix) <= 8
    ):
        raise _fail(path, "keys.prefix", "must be 1-8 ASCII letters or digits")

    journals: dict[str, JournalSpec] = {}
    raw_journals = data.get("journals") or {}
    if not isinstance(raw_journals, dict):
        raise _fail(path, "journals", "must be a mapping of user, moderation and error")
    unknown_journals = set(raw_journals) - set(DEFAULT_JOURNAL_RETENTION_DAYS)
    if unknown_journals:
        raise _fail(path, "journals", f"unknown journals {sorted(unknown_journals)}")
    for name, default_days in DEFAULT_JOURNAL_RETENTION_DAYS.items():
        entry = raw_journals.get(name) or {}
        if not isinstance(entry, dict):
            raise _fail(path, f"journals.{name}", "must be a mapping")
        unknown_fields = set(entry) - {"channel_id", "retention_days"}
        if unknown_fields:
            raise _fail(path, f"journals.{name}", f"unknown fields {sorted(unknown_fields)}")
        journals[name] = JournalSpec(
            channel_id=_snowflake(path, f"journals.{name}.channel_id", entry.get("channel_id")),
            # Explicit null keeps the journal for ever; a missing key takes the default.
            retention_days=_opt_int(path, f"journals.{name}.retention_days",
                                    entry.get("retention_days", default_days), minimum=1),
        )

    raw_limits = data.get("rate_limits") or {}
    if not isinstance(raw_limits, dict):
        raise _fail(path, "rate_limits", "must be a mapping of scope: N/period")
    unknown_scopes = set(raw_limits) - set(DEFAULT_RATE_LIMITS)
    if unknown_scopes:
        raise _fail(path, "rate_limits", f"unknown scopes {sorted(unknown_scopes)}")
    rate_limits: dict[str, Rate] = {}
    for scope, default in DEFAULT_RATE_LIMITS.items():
        text = raw_limits.get(scope, default)
        try:
            rate_limits[scope] = parse_rate(str(text))
        except ValueError:
            raise _fail(path, f"rate_limits.{scope}",
                        f"expected N/period such as 10/m or 5/10m, got {text!r}") from None

    return Behaviour(
        roles=roles,
        default_role=default_role,
        admin_role=admin_role,
        invite_expiry_days=_int(path, "invites.expiry_days", invites.get("expiry_days", 7),
                                minimum=1),
        link_code_ttl_minutes=_int(path, "discord_link.code_ttl_minutes",
                                   link.get("code_ttl_minutes", 15), minimum=1),
        registration_ip_window_hours=_int(path, "registration.ip_window_hours",
                                          registration.get("ip_window_hours", 24)),
        key_prefix=prefix.upper(),
        key_batch_max=_int(path, "keys.batch_max", keys_cfg.get("batch_max", 100_000), minimum=1),
        hwid_self_reset_cooldown_days=_int(
            path, "licensing.hwid_self_reset_cooldown_days",
            licensing.get("hwid_self_reset_cooldown_days", 7)),
        journals=journals,
        rate_limits=rate_limits,
    )
