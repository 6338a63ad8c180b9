"""journals.<name>.retention_days in config.yaml: defaults, null, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.behaviour import DEFAULT_JOURNAL_RETENTION_DAYS, load_behaviour

ROLES = "roles:\n  - {key: user, rank: 1, invite_quota: 2}\n"
REPO_CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"


def _load(tmp_path: Path, journals: str):
    path = tmp_path / "config.yaml"
    path.write_text(ROLES + journals, encoding="utf-8")
    return load_behaviour(path)


def _retention(behaviour) -> dict[str, int | None]:
    return {name: spec.retention_days for name, spec in behaviour.journals.items()}


def test_shipped_config_states_the_defaults():
    assert _retention(load_behaviour(REPO_CONFIG)) == {"user": 180, "moderation": 730,
                                                      "error": 90}


def test_left_out_takes_the_default_and_null_keeps_for_ever(tmp_path):
    assert _retention(_load(tmp_path, "")) == DEFAULT_JOURNAL_RETENTION_DAYS
    behaviour = _load(tmp_path, "journals:\n  user: {retention_days: 30, channel_id: '5'}\n"
                                "  error: {retention_days: null}\n")
    assert _retention(behaviour) == {"user": 30, "moderation": 730, "error": None}
    assert behaviour.journals["user"].channel_id == 5


@pytest.mark.parametrize(
    ("journals", "message"),
    [
        ("journals:\n  user: {retention_days: 0}\n",
         r"journals\.user\.retention_days: expected an integer >= 1 or null, got 0"),
        ("journals:\n  moderation: {retention_days: '90'}\n",
         r"journals\.moderation\.retention_days: expected an integer >= 1 or null, got '90'"),
        ("journals:\n  error: {retention_days: 1.5}\n", r"journals\.error\.retention_days"),
        ("journals:\n  error: {retention_days: true}\n", r"journals\.error\.retention_days"),
        ("journals:\n  user: {retention: 30}\n",
         r"journals\.user: unknown fields \['retention'\]"),
        ("journals:\n  users: {retention_days: 30}\n", r"journals: unknown journals \['users'\]"),
        ("journals:\n  user: 30\n", r"journals\.user: must be a mapping"),
        ("journals: [user]\n", r"journals: must be a mapping"),
    ],
)
def test_invalid_retention_names_the_field(tmp_path, journals, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        _load(tmp_path, journals)
