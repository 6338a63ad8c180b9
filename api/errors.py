"""Maps core.errors onto the API's one error shape: {"code", "message", "details"}."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI, Schema

from core.errors import ZspbError


class ErrorOut(Schema):
    code: str
    message: str
    details: dict[str, object]


def install_error_handlers(api: NinjaAPI) -> None:
    @api.exception_handler(ZspbError)
    def _domain(request: HttpRequest, exc: ZspbError) -> HttpResponse:
        return api.create_response(
            request,
            {"code": exc.code, "message": exc.message, "details": exc.details},
            status=exc.http_status,
        )
