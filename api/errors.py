"""Maps every error onto the API's one shape: {"code", "message", "details"}.

Domain errors (core.errors) carry their own code and status; Ninja's validation, auth,
throttle and 404 errors are translated; anything unexpected becomes a 500 with no internals,
journaled as a system error.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import BadRequest, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.translation import gettext as _
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError

from core.error_hooks import request_place
from core.errors import ZspbError
from core.requestid import request_id_current
from core.services.logs import error_journal

logger = logging.getLogger(__name__)


class ErrorOut(Schema):
    code: str
    message: str
    details: dict[str, Any]


# Declared on every operation so the schema documents the one error shape.
ERRORS: dict[int, type[Schema]] = dict.fromkeys((400, 401, 403, 404, 409, 422, 429), ErrorOut)

_HTTP_CODES = {400: "bad_request", 401: "not_authenticated", 403: "forbidden",
               404: "not_found", 405: "method_not_allowed", 409: "conflict",
               429: "rate_limited"}


def error_response(api: NinjaAPI, request: HttpRequest, status: int, code: str, message: str,
                   details: dict[str, Any] | None = None) -> HttpResponse:
    response = api.create_response(
        request, {"code": code, "message": message, "details": details or {}}, status=status
    )
    retry_after = (details or {}).get("retry_after")
    if status == 429 and retry_after:
        response["Retry-After"] = str(int(retry_after))
    return response


def _validation_details(errors: list[dict[str, Any]]) -> dict[str, Any]:
    fields = []
    for error in errors[:20]:
        loc = [str(part) for part in error.get("loc", [])]
        fields.append({"loc": loc, "msg": str(error.get("msg", ""))[:200],
                       "type": str(error.get("type", ""))})
    return {"errors": fields}


def install_error_handlers(api: NinjaAPI) -> None:
    @api.exception_handler(ZspbError)
    def _domain(request: HttpRequest, exc: ZspbError) -> HttpResponse:
        return error_response(api, request, exc.http_status, exc.code, str(exc.message),
                              exc.details)

    @api.exception_handler(ValidationError)
    def _validation(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        return error_response(api, request, 422, "invalid_input", _("Some fields are invalid."),
                              _validation_details(exc.errors))

    @api.exception_handler(AuthenticationError)
    def _auth(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        return error_response(api, request, 401, "not_authenticated",
                              _("Log in or send a valid token."))

    @api.exception_handler(Throttled)
    def _throttled(request: HttpRequest, exc: Throttled) -> HttpResponse:
        return error_response(api, request, 429, "rate_limited",
                              _("Too many attempts; try again later."),
                              {"retry_after": exc.wait or 1})

    @api.exception_handler(HttpError)
    def _http(request: HttpRequest, exc: HttpError) -> HttpResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = _("CSRF check failed: send the csrftoken cookie's value in X-CSRFToken.") if (
            "CSRF" in str(exc)) else str(exc)
        return error_response(api, request, exc.status_code, code, message)

    @api.exception_handler(Http404)
    def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return error_response(api, request, 404, "not_found", _("Not found."))

    @api.exception_handler(MultiPartParserError)
    @api.exception_handler(BadRequest)
    @api.exception_handler(SuspiciousOperation)
    def _bad_request(request: HttpRequest, exc: Exception) -> HttpResponse:
        # Malformed bodies (a multipart type without boundary, oversized uploads...) are the
        # client's fault, not a server error.
        return error_response(api, request, 400, "bad_request", _("The request body is malformed."),
                              {"error": type(exc).__name__})

    @api.exception_handler(Exception)
    def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
        # Answered here, so Django's got_request_exception (core.error_hooks) never sees it:
        # this is the API's one journal entry.
        request_id = getattr(request, "request_id", None) or request_id_current() or ""
        logger.exception("unhandled API error on %s %s", request.method, request.path)
        error_journal(action="api.unhandled", place=request_place(request), error=exc,
                      request_id=request_id,
                      data={"path": request.path[:200], "method": request.method})
        return error_response(api, request, 500, "internal_error",
                              _("Something went wrong on our side; it has been logged."),
                              {"request_id": request_id})
