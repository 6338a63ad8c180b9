"""Throttles live in the services, for every interface alike (issue 9, "one layer").

A service that serves web requests throttles per client address when it is given one, and
per account; routers and pages only parse input. Calls without an address (the bot, which
has its own per-Discord-id throttles, and code such as the concurrency tests) are not
counted per address.
"""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest
from django.conf import settings
from django.test import RequestFactory

from config.behaviour import Rate
from core.errors import InvalidCredentials, KeyInvalid, LinkCodeInvalid, RateLimited
from core.services.auth import user_login
from core.services.discord_link import link_code_consume
from core.services.keys import key_redeem
from core.services.users import user_register

pytestmark = pytest.mark.django_db

IP = "203.0.113.9"


@pytest.fixture
def tight(settings):
    """Every scope allows two attempts a minute."""
    settings.ZSPB = replace(settings.ZSPB, rate_limits={
        scope: Rate(count=2, seconds=60) for scope in settings.ZSPB.rate_limits})


def _third_is_throttled(call, expected) -> None:
    for _ in range(2):
        with pytest.raises(expected):
            call()
    with pytest.raises(RateLimited):
        call()


def test_key_redeem_throttles_per_address_and_account(tight, member):
    _third_is_throttled(lambda: key_redeem(user=member, code="ZSPB-NOPE", ip=IP), KeyInvalid)


def test_key_redeem_without_an_address_is_not_throttled_here(tight, member):
    # The bot calls without an address and is throttled per Discord id in core.services.bot.
    for _ in range(5):
        with pytest.raises(KeyInvalid):
            key_redeem(user=member, code="ZSPB-NOPE")


def test_link_code_consume_throttles(tight, member):
    _third_is_throttled(lambda: link_code_consume(user=member, code="AAAA-BBBB", ip=IP),
                        LinkCodeInvalid)


def test_login_throttles_per_address(tight, member):
    request = RequestFactory().post("/login")
    _third_is_throttled(lambda: user_login(request=request, username="member",
                                           password="wrong password", ip=IP),
                        InvalidCredentials)


def test_register_throttles_per_address(tight, admin):
    from core.errors import InviteInvalid

    _third_is_throttled(lambda: user_register(invite_code="NOPE-NOPE-NOPE", username="newbie",
                                              password="a fine passphrase", ip=IP),
                        InviteInvalid)


def test_routers_and_pages_do_not_throttle() -> None:
    callers = []
    for path in (Path(settings.BASE_DIR) / "api").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "rate_limit":
                callers.append(str(path.relative_to(settings.BASE_DIR)))
    assert callers == []


