"""Maps every error onto the API's one shape: {"code", "message", "details"}.

Domain errors (core.errors) carry their own code and status; Ninja's validation, auth,
throttle and 404 errors are translated; anything unexpected becomes a 500 with no internals,
journaled as a system error.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils import translation
from django.utils.translation import gettext as _
from django.views import defaults
from ninja import NinjaAPI, Router, Schema
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError
from ninja.params.models import BodyModel
from ninja.parser import Parser

from core.error_hooks import (
    database_unavailable,
    database_unavailable_journal,
    request_place,
)
from core.errors import ServiceUnavailable, ZspbError
from core.middleware import database_unavailable_page
from core.requestid import request_id_current
from core.services.logs import error_journal

logger = logging.getLogger(__name__)


class ErrorOut(Schema):
    code: str
    message: str
    details: dict[str, Any]


# Declared on every operation so the schema documents the one error shape. 414: an address
# longer than URL_MAX (UrlLengthLimit below; the front servers refuse far longer ones).
ERRORS: dict[int, type[Schema]] = dict.fromkeys((400, 401, 403, 404, 409, 414, 422, 429),
                                                ErrorOut)
# Only where a body is read: larger than DATA_UPLOAD_MAX_MEMORY_SIZE (413), not JSON (415).
BODY_ERRORS = (413, 415)
# Path and query string together, in characters; far below what nginx (8 KB request line) and
# uvicorn (64 KB) refuse in their own format, so the API answers first and in its shape.
URL_MAX = 4096

_HTTP_CODES = {400: "bad_request", 401: "not_authenticated", 403: "forbidden",
               404: "not_found", 405: "method_not_allowed", 409: "conflict",
               429: "rate_limited"}


class UnsupportedMediaType(Exception):
    """A body declared as something other than JSON."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class JsonParser(Parser):
    """Bodies are JSON, strictly: a declared non-JSON content type is refused (415) and
    Python's NaN/Infinity extensions are not JSON. A missing Content-Type is read as JSON, as
    simple loaders send. Ninja turns any exception here into its 400, raised from ours."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        content_type = request.content_type or ""
        if request.META.get("CONTENT_TYPE") and not (
                content_type == "application/json" or content_type.endswith("+json")):
            raise UnsupportedMediaType(content_type)
        data: dict[str, Any] = json.loads(request.body, parse_constant=_refuse_constant)
        return data


def declare_body_errors(routers: Iterable[Router]) -> None:
    """Adds BODY_ERRORS to every operation that reads a body, so the schema shows them where
    they can happen and nowhere else. Call before the routers are mounted."""
    for router in routers:
        for view in router.path_operations.values():
            for operation in view.operations:
                reads_body = any(issubclass(model, BodyModel) for model in operation.models)
                if reads_body and 400 in operation.response_models:
                    for status in BODY_ERRORS:
                        operation.response_models.setdefault(
                            status, operation.response_models[400])


def url_too_long(request: HttpRequest) -> HttpResponse:
    # Answered before LocaleMiddleware runs: pick the visitor's language as it would.
    with translation.override(translation.get_language_from_request(request)):
        message = _("The address is too long.")
    return JsonResponse({"code": "uri_too_long", "message": message,
                         "details": {"max_length": URL_MAX}}, status=414)


class UrlLengthLimit:
    """Refuses API addresses over URL_MAX with 414 in the error shape (Django middleware)."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith("/api/"):
            size = len(request.path_info) + len(request.META.get("QUERY_STRING", ""))
            if size > URL_MAX:
                return url_too_long(request)
        response: HttpResponse = self.get_response(request)
        return response


def error_response(api: NinjaAPI, request: HttpRequest, status: int, code: str, message: str,
                   details: dict[str, Any] | None = None) -> HttpResponse:
    response = api.create_response(
        request, {"code": code, "message": message, "details": details or {}}, status=status
    )
    retry_after = (details or {}).get("retry_after")
    if status in (429, 503) and retry_after:
        response["Retry-After"] = str(int(retry_after))
    return response


def _validation_details(errors: list[dict[str, Any]]) -> dict[str, Any]:
    fields = []
    for error in errors[:20]:
        loc = [str(part) for part in error.get("loc", [])]
        fields.append({"loc": loc, "msg": str(error.get("msg", ""))[:200],
                       "type": str(error.get("type", ""))})
    return {"errors": fields}


def _unavailable(api: NinjaAPI, request: HttpRequest) -> HttpResponse:
    error = ServiceUnavailable()
    return error_response(api, request, error.http_status, error.code, str(error.message),
                          error.details)


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
        cause = exc.__cause__
        if isinstance(cause, UnsupportedMediaType):
            return error_response(api, request, 415, "unsupported_media_type",
                                  _("Send the body as JSON (Content-Type: application/json)."),
                                  {"content_type": str(cause)[:100]})
        if cause is not None and exc.status_code == 400:
            # Ninja's "Cannot parse request body": not JSON, not UTF-8, nested too deeply...
            return error_response(api, request, 400, "bad_request",
                                  _("The request body is malformed."),
                                  {"error": type(cause).__name__})
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = _("CSRF check failed: send the csrftoken cookie's value in X-CSRFToken.") if (
            "CSRF" in str(exc)) else str(exc)
        return error_response(api, request, exc.status_code, code, message)

    @api.exception_handler(Http404)
    def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return error_response(api, request, 404, "not_found", _("Not found."))

    @api.exception_handler(RequestDataTooBig)
    def _too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
        return error_response(api, request, 413, "request_too_large",
                              _("The request body is too large."),
                              {"max_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE})

    @api.exception_handler(MultiPartParserError)
    @api.exception_handler(BadRequest)
    @api.exception_handler(SuspiciousOperation)
    def _bad_request(request: HttpRequest, exc: Exception) -> HttpResponse:
        # Malformed bodies (a multipart type without boundary, oversized uploads...) are the
        # client's fault, not a server error.
        return error_response(api, request, 400, "bad_request", _("The request body is malformed."),
                              {"error": type(exc).__name__})

    @api.exception_handler(OperationalError)
    @api.exception_handler(InterfaceError)
    def _database_unavailable(request: HttpRequest, exc: Exception) -> HttpResponse:
        # The database went away under the request (restart, failover, killed connection):
        # the client may retry; journaled once per outage, not as one bug per request.
        database_unavailable_journal(request, exc)
        return _unavailable(api, request)

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


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's handler500: a database failure raised outside a view (a session saved by
    middleware) answers 503 like one inside, JSON on the API and a plain page elsewhere;
    anything else keeps Django's 500 page. Journaled by core.error_hooks already.

    Django hands the error over only as sys.exc_info() (set under uvicorn too: the sync-only
    middleware keeps the handler in the thread that caught it; without it, a 500 page).
    """
    if not database_unavailable(sys.exc_info()[1]):
        return defaults.server_error(request)
    if not request.path.startswith("/api/"):
        return database_unavailable_page()
    error = ServiceUnavailable()
    response = JsonResponse({"code": error.code, "message": str(error.message),
                             "details": error.details}, status=error.http_status)
    response["Retry-After"] = str(error.retry_after)
    return response
