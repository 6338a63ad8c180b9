"""Request id middleware: every request gets an id, in its log lines and its response; pages
that lose the database answer 503, not 500."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.deprecation import MiddlewareMixin
from django.utils.html import escape

from core.error_hooks import database_unavailable, database_unavailable_journal
from core.errors import ServiceUnavailable
from core.requestid import HEADER, request_id_accept, request_id_reset, request_id_set

logger = logging.getLogger(__name__)


class RequestIdMiddleware:
    """Takes a sane X-Request-ID from the proxy or makes one, and answers with it.

    First in MIDDLEWARE, so every log line of the request (Django's own "Internal Server
    Error" included) carries the id. Sync and async, like the rest of the stack, so the id
    lives in the same context as the view under uvicorn.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self._acall(request)
        request_id = self._start(request)
        token = request_id_set(request_id)
        try:
            response: HttpResponseBase = self.get_response(request)
        finally:
            request_id_reset(token)
        response[HEADER] = request_id
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        request_id = self._start(request)
        token = request_id_set(request_id)
        try:
            get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = (
                self.get_response)
            response = await get_response(request)
        finally:
            request_id_reset(token)
        response[HEADER] = request_id
        return response

    @staticmethod
    def _start(request: HttpRequest) -> str:
        request_id = request_id_accept(request.headers.get(HEADER))
        request.request_id = request_id  # type: ignore[attr-defined]
        return request_id


def database_unavailable_page() -> HttpResponse:
    """A plain 503 page: no template, no session, no database, since what failed may be the
    database behind all of them."""
    error = ServiceUnavailable()
    message = escape(str(error.message))
    response = HttpResponse(
        f'<!doctype html><html><head><meta charset="utf-8"><title>{message}</title></head>'
        f"<body><p>{message}</p></body></html>", status=error.http_status)
    response["Retry-After"] = str(error.retry_after)
    return response


class DatabaseUnavailableMiddleware(MiddlewareMixin):
    """A page whose view lost the database (a restart, failover or killed connection) answers
    503 with Retry-After instead of a 500, and is journaled once per outage, not as a bug.

    The API answers its own (api.errors); errors raised by other middleware reach
    api.errors.server_error, Django's handler500.
    """

    def process_exception(self, request: HttpRequest,
                          exception: Exception) -> HttpResponse | None:
        if not database_unavailable(exception):
            return None
        logger.warning("database unavailable on %s %s: %s", request.method, request.path,
                       exception)
        database_unavailable_journal(request, exception)
        return database_unavailable_page()
