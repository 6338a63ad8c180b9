"""Who may call what: every API operation x every kind of caller, own and someone else's object.

The schema walker fails when an operation is missing from the matrix, or has no auth without
being on the public allow-list, so a new endpoint cannot ship unreviewed.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.test import Client

from api.api import api
from core.models import LoaderRelease, Subscription, User
from core.services.bans import ban_create
from core.services.discord_link import link_code_create
from core.services.invites import invite_create
from core.services.keys import keys_generate
from core.services.releases import release_download_link
from tests.factories import ProductFactory, UserFactory
from tests.staff.conftest import otp_verify

# "superuser" is the bootstrap administrator (role admin, is_superuser): allowed whatever a
# member or any staff role may do.
CALLERS = ("anon", "user", "support", "moderator", "admin", "superuser", "banned", "bot")
INVOKERS = ("unlinked", "user", "support", "moderator", "admin", "banned")
ROLE_OF = {"user": "user", "support": "support", "moderator": "moderator", "admin": "admin",
           "superuser": "admin", "banned": "user", "other": "user"}
PUBLIC = {"auth_csrf", "auth_login", "auth_register", "health", "health_live", "health_ready",
          "license_check",
          "license_public_key", "loader_download"}
PASSWORD = "correct horse battery"
_ip_counter = itertools.count(1)


@dataclass
class World:
    users: dict[str, User]
    product: Any
    tokens: dict[str, str] = field(default_factory=dict)

    def discord_id(self, who: str) -> str:
        if who == "unlinked":
            return "999999999"
        return str(self.users[who].discord_id)


@dataclass
class Req:
    method: str
    path: str
    body: Any = None


def _build_world(tmp_path: Any) -> World:
    from core.services.roles import roles_sync_from_config

    roles_sync_from_config()
    from core.models import Role

    roles = {r.key: r for r in Role.objects.all()}
    product = ProductFactory.create(name="Loader", slug="loader")
    users = {}
    for n, (who, role) in enumerate(ROLE_OF.items(), start=1):
        users[who] = UserFactory.create(username=who, role=roles[role], discord_id=5000 + n,
                                        discord_username=f"{who}_dc",
                                        is_superuser=who == "superuser")
        Subscription.objects.create(user=users[who], product=product,
                                    expires_at=_now() + timedelta(days=30))
    release = LoaderRelease.objects.create(version="1.0.0", sha256="0" * 64, size=5,
                                           published=True)
    release.file.save("loader.bin", ContentFile(b"bytes"), save=True)
    world = World(users=users, product=product)
    for who in users:
        world.tokens[who] = release_download_link(user=users[who]).token
    ban_create(actor=users["admin"], user=users["banned"], reason="matrix")
    users["banned"].refresh_from_db()
    return world


def _now() -> Any:
    from django.utils import timezone

    return timezone.now()


def _caller_user(world: World, caller: str) -> User:
    # Anonymous callers and the bot act on the plain member's objects where one is needed.
    return world.users["other" if caller in ("anon", "bot") else caller]


def _own_invite(world: World, caller: str) -> int:
    # A banned member cannot create invites any more; theirs was made before the ban.
    owner = world.users["other"] if caller == "banned" else _caller_user(world, caller)
    return invite_create(creator=owner).pk


def _own_token(world: World, caller: str) -> str:
    return world.tokens[_caller_user(world, caller).username]


def _fresh_key(world: World) -> str:
    return keys_generate(actor=world.users["admin"], product=world.product,
                         duration=timedelta(days=1), count=1).codes[0]


def _fresh_target(world: World, banned: bool = False) -> str:
    target = UserFactory.create(discord_id=7000 + next(_ip_counter))
    if banned:
        ban_create(actor=world.users["admin"], user=target, reason="target")
    return str(target.discord_id)


def _link_code_for(world: World, caller: str) -> str:
    user = _caller_user(world, caller)
    User.objects.filter(pk=user.pk).update(discord_id=None)
    return link_code_create(discord_id=8000 + next(_ip_counter))


def _bound_machine(world: World, caller: str) -> Req:
    Subscription.objects.filter(user=_caller_user(world, caller)).update(
        hwid_digest="0" * 64, hwid_self_reset_at=None)
    return Req("POST", "/api/subscriptions/loader/reset-machine")


Prepare = Callable[[World, str], Req]
ALL_200 = dict.fromkeys(CALLERS, 200)
MEMBER_ONLY = {"anon": 401, "user": 200, "support": 200, "moderator": 200, "admin": 200,
               "superuser": 200, "banned": 401, "bot": 401}
SUPPORT_UP = {**MEMBER_ONLY, "user": 403}
MODERATOR_UP = {**SUPPORT_UP, "support": 403}
BOT_ONLY = {**dict.fromkeys(CALLERS, 401), "bot": 200}


def _with(base: dict[str, int], **over: int) -> dict[str, int]:
    return {**base, **over}


# operation id -> {variant: (prepare, expected status per caller)}
SESSION_MATRIX: dict[str, dict[str, tuple[Prepare, dict[str, int]]]] = {
    "auth_csrf": {"-": (lambda w, c: Req("GET", "/api/auth/csrf"), ALL_200)},
    "auth_login": {"-": (
        lambda w, c: Req("POST", "/api/auth/login",
                         {"username": _caller_user(w, c).username, "password": PASSWORD}),
        # A banned member with the right password learns that they are banned (and why).
        _with(ALL_200, banned=403))},
    "auth_change_password": {"-": (
        lambda w, c: Req("POST", "/api/auth/password",
                         {"old_password": PASSWORD, "new_password": "another fine passphrase"}),
        MEMBER_ONLY)},
    "auth_end_other_sessions": {"-": (lambda w, c: Req("POST", "/api/auth/end-other-sessions"),
                                      MEMBER_ONLY)},
    "auth_logout": {"-": (lambda w, c: Req("POST", "/api/auth/logout"), MEMBER_ONLY)},
    "auth_register": {"-": (
        lambda w, c: Req("POST", "/api/auth/register",
                         {"invite": invite_create(creator=w.users["admin"]).code,
                          "username": f"new{next(_ip_counter)}",
                          "password": "a fine passphrase"}),
        dict.fromkeys(CALLERS, 201))},
    "auth_me": {"-": (lambda w, c: Req("GET", "/api/auth/me"), MEMBER_ONLY)},
    "invites_list": {"-": (lambda w, c: Req("GET", "/api/invites"), MEMBER_ONLY)},
    "invites_create": {"-": (lambda w, c: Req("POST", "/api/invites"),
                             _with(MEMBER_ONLY, user=201, support=201, moderator=201,
                                   admin=201, superuser=201))},
    "invites_quota": {"-": (lambda w, c: Req("GET", "/api/invites/quota"), MEMBER_ONLY)},
    "invites_revoke": {
        "own": (lambda w, c: Req("POST", f"/api/invites/{_own_invite(w, c)}/revoke"),
                MEMBER_ONLY),
        "other": (lambda w, c: Req("POST", f"/api/invites/"
                                   f"{invite_create(creator=w.users['other']).pk}/revoke"),
                  _with(MEMBER_ONLY, user=403, support=403)),
    },
    "keys_redeem": {"-": (lambda w, c: Req("POST", "/api/keys/redeem", {"key": _fresh_key(w)}),
                          MEMBER_ONLY)},
    "subscriptions_list": {"-": (lambda w, c: Req("GET", "/api/subscriptions"), MEMBER_ONLY)},
    "subscriptions_reset_machine": {"-": (
        lambda w, c: _bound_machine(w, c),
        MEMBER_ONLY)},
    "stats_me": {"-": (lambda w, c: Req("GET", "/api/stats/me"), MEMBER_ONLY)},
    "stats_user": {
        "own": (lambda w, c: Req("GET", f"/api/stats/users/{_caller_user(w, c).pk}"),
                MEMBER_ONLY),
        "other": (lambda w, c: Req("GET", f"/api/stats/users/{w.users['other'].pk}"),
                  SUPPORT_UP),
    },
    "stats_history": {"-": (lambda w, c: Req("GET", "/api/stats/history"), SUPPORT_UP)},
    "discord_link": {"-": (lambda w, c: Req("POST", "/api/discord/link",
                                            {"code": _link_code_for(w, c)}), MEMBER_ONLY)},
    "discord_unlink": {"-": (lambda w, c: Req("DELETE", "/api/discord/link"), MEMBER_ONLY)},
    # Discord is off in these tests: members are told so (409); the rest are refused first.
    "discord_resync": {"-": (lambda w, c: Req("POST", "/api/discord/resync"),
                             _with(MEMBER_ONLY, user=409, support=409, moderator=409,
                                   admin=409, superuser=409))},
    "loader_latest": {"-": (lambda w, c: Req("GET", "/api/loader/latest"), MEMBER_ONLY)},
    "loader_download_link": {"-": (lambda w, c: Req("POST", "/api/loader/download-link"),
                                   MEMBER_ONLY)},
    # The signed link is the credential: whoever holds it downloads, unless its owner has been
    # banned since (or lost the subscription).
    "loader_download": {
        "own": (lambda w, c: Req("GET", f"/api/loader/download/{_own_token(w, c)}"),
                _with(ALL_200, banned=403)),
        "forged": (lambda w, c: Req("GET", f"/api/loader/download/{w.tokens['other']}x"),
                   dict.fromkeys(CALLERS, 403)),
    },
    "license_public_key": {"-": (lambda w, c: Req("GET", "/api/license/public-key"), ALL_200)},
    "license_check": {"-": (
        lambda w, c: Req("POST", "/api/license/check",
                         {"product": "loader", "hwid": "HW-1", "nonce": "n" * 16,
                          "username": _caller_user(w, c).username, "password": PASSWORD}),
        ALL_200)},
    "health": {"-": (lambda w, c: Req("GET", "/api/health"), ALL_200)},
    "health_live": {"-": (lambda w, c: Req("GET", "/api/health/live"), ALL_200)},
    "health_ready": {"-": (lambda w, c: Req("GET", "/api/health/ready"), ALL_200)},
}

# Bot operations: every session caller is refused (401); with the token, the invoking Discord
# user's own rights decide.
BOT_MATRIX: dict[str, dict[str, tuple[Prepare, dict[str, int]]]] = {
    "bot_link_code_create": {"-": (
        lambda w, i: Req("POST", "/api/bot/link-codes", {"discord_username": "someone"}),
        {"unlinked": 200, "user": 409, "support": 409, "moderator": 409, "admin": 409,
         "banned": 409})},
    "bot_key_redeem": {"-": (
        lambda w, i: Req("POST", "/api/bot/redeem", {"key": _fresh_key(w)}),
        {"unlinked": 403, "user": 200, "support": 200, "moderator": 200, "admin": 200,
         "banned": 403})},
    "bot_keys_generate": {"-": (
        lambda w, i: Req("POST", "/api/bot/keys",
                         {"product": "loader", "duration_days": 30, "count": 2}),
        {"unlinked": 403, "user": 403, "support": 403, "moderator": 200, "admin": 200,
         "banned": 403})},
    "bot_ban_create": {"-": (
        lambda w, i: Req("POST", "/api/bot/bans",
                         {"target_discord_id": _fresh_target(w), "reason": "spam"}),
        {"unlinked": 403, "user": 403, "support": 200, "moderator": 200, "admin": 200,
         "banned": 403})},
    "bot_ban_lift": {"-": (
        lambda w, i: Req("POST", "/api/bot/unbans",
                         {"target_discord_id": _fresh_target(w, banned=True)}),
        {"unlinked": 403, "user": 403, "support": 200, "moderator": 200, "admin": 200,
         "banned": 403})},
    "bot_user_stats": {
        "own": (lambda w, i: Req("GET", f"/api/bot/stats/{w.discord_id(i)}"),
                {"unlinked": 403, "user": 200, "support": 200, "moderator": 200, "admin": 200,
                 "banned": 403}),
        "other": (lambda w, i: Req("GET", f"/api/bot/stats/{w.discord_id('other')}"),
                  {"unlinked": 403, "user": 403, "support": 200, "moderator": 200,
                   "admin": 200, "banned": 403}),
    },
    "bot_member_roles": {"-": (
        lambda w, i: Req("GET", f"/api/bot/members/{w.discord_id('other')}/roles"),
        dict.fromkeys(INVOKERS, 200))},
    "bot_member_event": {"-": (
        lambda w, i: Req("POST", f"/api/bot/members/{w.discord_id('other')}/events",
                         {"event": "update"}),
        dict.fromkeys(INVOKERS, 200))},
}


def _send(client: Client, req: Req, **headers: str) -> Any:
    kwargs: dict[str, Any] = dict(headers)
    if req.body is not None:
        kwargs.update(data=json.dumps(req.body), content_type="application/json")
    return getattr(client, req.method.lower())(req.path, **kwargs)


def _session_client(world: World, caller: str) -> tuple[Client, dict[str, str]]:
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR=f"10.9.{next(_ip_counter) % 250}.1")
    headers: dict[str, str] = {}
    if caller == "bot":
        headers = {"HTTP_AUTHORIZATION": f"Bearer {settings.BOT_API_TOKEN}",
                   "HTTP_X_DISCORD_USER_ID": world.discord_id("admin")}
    elif caller != "anon":
        client.force_login(world.users[caller],
                           backend="django.contrib.auth.backends.ModelBackend")
        if world.users[caller].is_staff:
            # Staff sessions have passed TOTP; test_staff_two_factor.py covers those that have not.
            otp_verify(client, world.users[caller])
    client.get("/api/auth/csrf")
    headers["HTTP_X_CSRFTOKEN"] = client.cookies[settings.CSRF_COOKIE_NAME].value
    return client, headers


SESSION_CELLS = [
    (op, variant, caller)
    for op, variants in [*((op, list(v)) for op, v in SESSION_MATRIX.items()),
                         *((op, ["-"]) for op in BOT_MATRIX)]
    for variant in variants
    for caller in CALLERS
]
BOT_CELLS = [(op, variant, invoker) for op, variants in BOT_MATRIX.items()
             for variant in variants for invoker in INVOKERS]


@pytest.fixture
def world(db: None, tmp_path: Any, settings: Any) -> World:
    settings.MEDIA_ROOT = tmp_path
    return _build_world(tmp_path)


@pytest.mark.parametrize(("op", "variant", "caller"), SESSION_CELLS)
def test_session_callers(world: World, op: str, variant: str, caller: str) -> None:
    client, headers = _session_client(world, caller)
    if op in BOT_MATRIX:
        prepare, _ = next(iter(BOT_MATRIX[op].values()))
        req = prepare(world, "admin")
        headers.pop("HTTP_AUTHORIZATION", None)  # the bot column is covered by test_bot_callers
        expected = 401
    else:
        prepare, statuses = SESSION_MATRIX[op][variant]
        req = prepare(world, caller)
        expected = statuses[caller]
        if caller == "bot":
            headers.pop("HTTP_X_DISCORD_USER_ID")
    response = _send(client, req, **headers)
    assert response.status_code == expected, (op, variant, caller, response.content[:300])
    if response.status_code >= 400:
        assert set(response.json()) == {"code", "message", "details"}


@pytest.mark.parametrize(("op", "variant", "invoker"), BOT_CELLS)
def test_bot_callers(world: World, op: str, variant: str, invoker: str) -> None:
    prepare, statuses = BOT_MATRIX[op][variant]
    client = Client()
    response = _send(client, prepare(world, invoker),
                     HTTP_AUTHORIZATION=f"Bearer {settings.BOT_API_TOKEN}",
                     HTTP_X_DISCORD_USER_ID=world.discord_id(invoker))
    assert response.status_code == statuses[invoker], (op, variant, invoker,
                                                       response.content[:300])
    if response.status_code >= 400:
        assert set(response.json()) == {"code", "message", "details"}


@pytest.mark.parametrize("token", ["", "x" * 40, "Bearer", "wrong-but-long-enough-token-12345678"])
def test_bot_token_is_checked(db: None, token: str) -> None:
    response = Client().get("/api/bot/members/5001/roles", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401


def test_every_operation_is_in_the_matrix_and_authenticated() -> None:
    schema = api.get_openapi_schema()
    seen = set()
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            op = operation["operationId"]
            seen.add(op)
            assert op in SESSION_MATRIX or op in BOT_MATRIX, f"{method} {path} ({op}) not in matrix"
            if op not in PUBLIC:
                assert operation.get("security"), f"{op} has no auth and is not on the allow-list"
            assert operation.get("summary"), f"{op} has no summary"
            declared = {str(code) for code in operation["responses"]}
            assert {"401", "403", "422", "429"} <= declared, f"{op} does not declare errors"
    assert seen == set(SESSION_MATRIX) | set(BOT_MATRIX), "matrix lists removed operations"
    assert seen >= PUBLIC
