from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.behaviour import load_behaviour

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_config_matches_the_design():
    behaviour = load_behaviour(REPO_CONFIG)
    quotas = {r.key: r.invite_quota for r in behaviour.roles}
    assert quotas == {"user": 2, "support": 2, "moderator": 10, "admin": None}
    assert behaviour.link_code_ttl_minutes == 15
    assert behaviour.invite_expiry_days == 7
    assert behaviour.default_role == "user" and behaviour.admin_role == "admin"
    ranks = [r.rank for r in behaviour.roles]
    assert ranks == sorted(ranks)


def test_minimal_config_gets_defaults(tmp_path):
    behaviour = load_behaviour(_write(tmp_path, "roles:\n  - {key: user, rank: 1, "
                                                "invite_quota: 2}\n"))
    assert behaviour.registration_ip_window_hours == 24
    assert behaviour.key_prefix == "ZSPB"
    assert behaviour.admin_role == "user"


def test_discord_ids_may_be_quoted(tmp_path):
    path = _write(tmp_path, "roles:\n  - {key: user, rank: 1, invite_quota: 2, "
                            "discord_role_id: '1234567890123456789'}\n")
    assert load_behaviour(path).roles[0].discord_role_id == 1234567890123456789


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("roles: []\n", "at least one role"),
        ("roles:\n  - {key: user, rank: 0, invite_quota: 2}\n", "rank"),
        ("roles:\n  - {key: user, rank: 1, invite_quota: -1}\n", "invite_quota"),
        ("roles:\n  - {key: user, rank: 1, invite_quota: 2, permissions: [fly]}\n", "fly"),
        ("roles:\n  - {key: user, rank: 1, invite_quota: 2, colour: red}\n", "colour"),
        ("roles:\n  - {key: a, rank: 1, invite_quota: 2}\n  - {key: b, rank: 1, "
         "invite_quota: 2}\n", "duplicate role rank"),
        ("roles:\n  - {key: a, rank: 1, invite_quota: 2}\ndefault_role: b\n", "default_role"),
        ("roles:\n  - {key: a, rank: 1, invite_quota: 2}\nkeys: {prefix: 'ZS-PB'}\n", "prefix"),
        ("roles:\n  - {key: a, rank: 1, invite_quota: 2}\ninvites: {expiry_days: 0}\n",
         "expiry_days"),
        ("roles: [\n", "not valid YAML"),
    ],
)
def test_invalid_config_names_the_field(tmp_path, text, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        load_behaviour(_write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="not found"):
        load_behaviour(tmp_path / "nope.yaml")
