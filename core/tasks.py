"""django-q2 task entry points: take ids, re-fetch, call one service, safe to run twice."""

from __future__ import annotations

from core.services.bans import bans_expire_due


def expire_bans() -> int:
    return bans_expire_due()
