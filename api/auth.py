"""Authentication for the three kinds of caller: member pages (session + CSRF), the bot
(bearer BOT_API_TOKEN, acting for the invoking Discord user) and the loader (licence check)."""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja.security import APIKeyCookie, HttpBearer

from core.errors import NotAuthenticated
from core.models import User


class MemberSession(APIKeyCookie):
    """Django's session cookie; unsafe methods also need the CSRF token (Ninja checks it)."""

    param_name = settings.SESSION_COOKIE_NAME

    def authenticate(self, request: HttpRequest, key: str | None) -> User | None:
        user = request.user
        # AuthenticationMiddleware already refuses inactive (banned) accounts and sessions
        # whose auth hash no longer matches (session_epoch bumped).
        if user.is_authenticated and isinstance(user, User):
            return user
        return None


class BotCaller:
    """Marker for requests made with the bot's token."""


BOT = BotCaller()


class BotToken(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> BotCaller | None:
        if hmac.compare_digest(token.encode(), settings.BOT_API_TOKEN.encode()):
            return BOT
        return None


member_auth = MemberSession()
bot_auth = BotToken()


def current_user(request: HttpRequest) -> User:
    user: Any = getattr(request, "auth", None)
    if not isinstance(user, User):
        raise NotAuthenticated()
    return user
