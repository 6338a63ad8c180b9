"""Request id middleware: every request gets an id, in its log lines and its response."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from core.requestid import HEADER, request_id_accept, request_id_reset, request_id_set


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
