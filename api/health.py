"""Health for load balancers and monitoring.

- `/health/live`: the process answers (no database or cache call); restart it when this fails.
- `/health/ready`: database and cache answer; take the node out of the balancer when this is
  503. A queue backlog is reported but keeps 200: it is the worker's problem, and failing every
  web node over it would take the whole site down.
- `/health`: everything at once, queue included (503 on a backlog); for monitoring, not for a
  load balancer.
"""

from __future__ import annotations

from typing import Any, Literal

from django.conf import settings
from django.http import HttpRequest
from ninja import Router, Schema, Status

from api.errors import ERRORS
from core.selectors.health import health_readiness

router = Router(tags=["operations"])


class HealthOut(Schema):
    database: bool
    cache: bool
    queue_length: int
    queue_ok: bool


class LiveOut(Schema):
    status: Literal["ok"]


class ReadyOut(HealthOut):
    ready: bool
    queue_warn_threshold: int


@router.get("/health", response={200: HealthOut, 503: HealthOut, **ERRORS}, auth=None,
            operation_id="health",
            summary="Database, cache and task queue: 503 when any fails, a queue backlog "
                    "included (monitoring)")
def health(request: HttpRequest) -> Status[Any]:
    state = health_readiness()
    body = HealthOut(database=state.database, cache=state.cache,
                     queue_length=state.queue_length, queue_ok=state.queue_ok)
    return Status(200 if state.serving and state.queue_ok else 503, body)


@router.get("/health/live", response={200: LiveOut, **ERRORS}, auth=None,
            operation_id="health_live",
            summary="Liveness: the process answers (no database or cache call)")
def live(request: HttpRequest) -> LiveOut:
    return LiveOut(status="ok")


@router.get("/health/ready", response={200: ReadyOut, 503: ReadyOut, **ERRORS}, auth=None,
            operation_id="health_ready",
            summary="Readiness: 503 when the database or the cache fails; a queue backlog is "
                    "reported but stays 200")
def ready(request: HttpRequest) -> Status[Any]:
    state = health_readiness()
    body = ReadyOut(ready=state.serving, database=state.database, cache=state.cache,
                    queue_length=state.queue_length, queue_ok=state.queue_ok,
                    queue_warn_threshold=settings.QUEUE_WARN_THRESHOLD)
    return Status(200 if state.serving else 503, body)
