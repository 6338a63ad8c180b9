"""The id of the request (or task) being served, for log lines and error journal entries.

A context variable, so each request, thread and asyncio task sees its own; the logging filter
copies it onto every record so the console and journal files can print it.
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar, Token

HEADER = "X-Request-ID"
# An id from the proxy (nginx's $request_id) or a client is kept when it is short and plain,
# so it can be searched for in logs; anything else is replaced.
_SANE = re.compile(r"[A-Za-z0-9._:-]{8,64}")

_current: ContextVar[str | None] = ContextVar("zspb_request_id", default=None)


def request_id_new() -> str:
    return uuid.uuid4().hex


def request_id_accept(incoming: str | None) -> str:
    """The incoming id when it is sane, a new one otherwise."""
    if incoming and _SANE.fullmatch(incoming):
        return incoming
    return request_id_new()


def request_id_current() -> str | None:
    return _current.get()


def request_id_set(value: str | None) -> Token[str | None]:
    return _current.set(value)


def request_id_reset(token: Token[str | None]) -> None:
    _current.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds `request_id` ("-" outside a request) to every record a handler emits."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = _current.get() or "-"
        return True
