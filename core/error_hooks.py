"""Unhandled exceptions of requests and django-q2 tasks into the system-error journal.

Connected once by CoreConfig.ready(). The API answers its own errors (api.errors) and
journals them there, so Django's got_request_exception only fires here for the pages and the
admin. A task failure is seen in the worker through django-q2's post_execute_in_worker.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError, connections
from django.http import HttpRequest
from django_q.signals import post_execute_in_worker, pre_execute

from core.requestid import request_id_current, request_id_set
from core.services.logs import error_journal

# django-q2 stores a failure as "<message> : <traceback>"; the traceback's last line starts
# with the exception's (qualified) class name.
_LAST_LINE_TYPE = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")


def request_place(request: HttpRequest) -> str:
    """The method and view that failed, for deduplication: the URL name of a page or admin
    view; the route of an API operation (Ninja serves every method of a path from one view
    named after the first operation)."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        name = request.path
    elif match._func_path.startswith("ninja."):
        name = f"/{match.route}"
    else:
        name = match.view_name or match._func_path
    return f"{request.method} {name}"[:200]


def database_unavailable(error: BaseException | None) -> bool:
    """Whether the error is the database failing under the request (its connection cut by a
    restart, failover or pg_terminate_backend; a lock or statement timeout), which the client
    may retry, rather than a bug."""
    return isinstance(error, OperationalError | InterfaceError)


def database_unavailable_journal(request: HttpRequest, error: BaseException) -> None:
    """Closes the request's broken connections, then journals once per error type and dedup
    period for the whole site (one place, "database", not one per view).

    Django closes a broken connection only when the request ends; without closing it here the
    journal entry would be written on the dead connection and fail.
    """
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()
    error_journal(action="database.unavailable", place="database", error=error,
                  request_id=getattr(request, "request_id", None) or request_id_current(),
                  data={"method": request.method, "path": request.path[:200]})


def _on_request_exception(sender: Any, request: HttpRequest | None = None,
                          **kwargs: Any) -> None:
    error = sys.exc_info()[1]
    if request is None or error is None:
        return
    if database_unavailable(error):
        database_unavailable_journal(request, error)
        return
    error_journal(action="request.unhandled", place=request_place(request), error=error,
                  request_id=getattr(request, "request_id", None) or request_id_current(),
                  data={"method": request.method, "path": request.path[:200]})


def _failure_type(result: Any) -> str:
    lines = [line for line in str(result or "").splitlines() if line.strip()]
    match = _LAST_LINE_TYPE.match(lines[-1]) if lines else None
    return match.group(1).rsplit(".", 1)[-1] if match else "Exception"


def _on_task_start(sender: Any, task: dict[str, Any] | None = None, **kwargs: Any) -> None:
    # A worker runs one task at a time: its log lines carry the task's id as request id.
    request_id_set(str((task or {}).get("id") or "") or None)


def _on_task_executed(sender: Any, task: dict[str, Any] | None = None, func: Any = None,
                      **kwargs: Any) -> None:
    try:
        _journal_task_failure(task, func)
    finally:
        request_id_set(None)


def _journal_task_failure(task: dict[str, Any] | None, func: Any) -> None:
    if not task or task.get("success", False) is True:
        return
    error: BaseException | str | None = sys.exc_info()[1]  # a sync task re-raises from here
    if error is None:
        if "success" not in task:
            return
        error = _failure_type(task.get("result"))
    name = getattr(func, "__qualname__", None) or str(task.get("func") or task.get("name"))
    module = getattr(func, "__module__", "")
    place = f"task:{module}.{name}" if module else f"task:{name}"
    error_journal(action="task.failed", place=place, error=error,
                  request_id=str(task.get("id") or ""),
                  data={"task": str(task.get("name") or "")[:100]})


def connect() -> None:
    got_request_exception.connect(_on_request_exception, dispatch_uid="zspb.request_errors")
    pre_execute.connect(_on_task_start, dispatch_uid="zspb.task_request_id")
    post_execute_in_worker.connect(_on_task_executed, dispatch_uid="zspb.task_errors")
