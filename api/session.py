"""Login, logout, registration by invite and the current member, for the site's pages."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import login as django_login
from django.contrib.auth import update_session_auth_hash
from django.http import HttpRequest
from django.middleware.csrf import get_token
from ninja import Router, Schema, Status
from ninja.errors import HttpError
from ninja.utils import check_csrf

from api.auth import current_user, member_auth
from api.errors import ERRORS
from api.net import client_ip
from api.schemas import (
    Email,
    InputSchema,
    InviteCode,
    NewPassword,
    NewUsername,
    Password,
    Username,
)
from core.models import User
from core.services.auth import user_login, user_logout
from core.services.users import user_change_password, user_end_sessions, user_register

router = Router(tags=["auth"])


class CsrfOut(Schema):
    csrf_token: str


class LoginIn(InputSchema):
    username: Username
    password: Password


class RegisterIn(InputSchema):
    invite: InviteCode
    username: NewUsername
    password: NewPassword
    email: Email = ""


class PasswordIn(InputSchema):
    old_password: Password
    new_password: NewPassword


class MeOut(Schema):
    id: int
    username: str
    role: str | None
    rank: int
    capabilities: list[str]
    is_staff: bool
    discord_linked: bool
    discord_username: str


class OkOut(Schema):
    ok: bool


def _me(user: User) -> MeOut:
    return MeOut(
        id=user.pk, username=user.username, role=user.role.name if user.role else None,
        rank=user.rank, capabilities=sorted(user.role.permissions if user.role else []),
        is_staff=user.is_staff, discord_linked=user.discord_id is not None,
        discord_username=user.discord_username,
    )


def _require_csrf(request: HttpRequest) -> None:
    # Anonymous endpoints are outside Ninja's cookie-auth CSRF check; login CSRF still matters.
    if check_csrf(request) is not None:
        raise HttpError(403, "CSRF check failed")


@router.get("/csrf", auth=None, response={200: CsrfOut, **ERRORS}, operation_id="auth_csrf",
            summary="Set the CSRF cookie and return its token")
def csrf(request: HttpRequest) -> CsrfOut:
    return CsrfOut(csrf_token=get_token(request))


@router.post("/login", auth=None, response={200: MeOut, **ERRORS}, operation_id="auth_login",
             summary="Log in with username and password (locks out after repeated failures)")
def login(request: HttpRequest, body: LoginIn) -> MeOut:
    _require_csrf(request)
    return _me(user_login(request=request, username=body.username, password=body.password,
                          ip=client_ip(request)))


@router.post("/logout", auth=member_auth, response={200: OkOut, **ERRORS},
             operation_id="auth_logout", summary="End this session")
def logout(request: HttpRequest) -> OkOut:
    user_logout(request=request, user=current_user(request))
    return OkOut(ok=True)


@router.post("/register", auth=None, response={201: MeOut, **ERRORS},
             operation_id="auth_register", summary="Create an account with an invite code")
def register(request: HttpRequest, body: RegisterIn) -> Status[Any]:
    _require_csrf(request)
    user = user_register(invite_code=body.invite, username=body.username,
                         password=body.password, email=body.email, ip=client_ip(request))
    django_login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return Status(201, _me(user))


@router.get("/me", auth=member_auth, response={200: MeOut, **ERRORS}, operation_id="auth_me",
            summary="The logged-in member")
def me(request: HttpRequest) -> MeOut:
    return _me(current_user(request))


@router.post("/password", auth=member_auth, response={200: OkOut, **ERRORS},
             operation_id="auth_change_password",
             summary="Change my password; every other session ends")
def change_password(request: HttpRequest, body: PasswordIn) -> OkOut:
    user = user_change_password(user=current_user(request), old_password=body.old_password,
                                new_password=body.new_password)
    update_session_auth_hash(request, user)  # this session survives, the others do not
    return OkOut(ok=True)


@router.post("/end-other-sessions", auth=member_auth, response={200: OkOut, **ERRORS},
             operation_id="auth_end_other_sessions",
             summary="Log out everywhere else (other browsers and devices)")
def end_other_sessions(request: HttpRequest) -> OkOut:
    user = current_user(request)
    user_end_sessions(actor=user, user=user)
    user.refresh_from_db(fields=["session_epoch"])
    update_session_auth_hash(request, user)
    return OkOut(ok=True)
