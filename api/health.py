"""Health for load balancers and monitoring.

- `/health/live`: the process answers (no database or cache call); restart it when this fails.
- `/health/ready`: the database answers; take the node out of the balancer when this is 503.
  Redis down is reported (`cache: false`, `degraded: true`) but keeps 200: the cache falls back
  to a per-process one and the site keeps serving, and failing every web node over it would
  take the whole site down. A queue backlog is reported and keeps 200 too: it is the worker's
  problem.
- `/health`: everything at once, cache and queue included (503 when Redis is down or on a
  backlog); for monitoring, not for a load balancer.
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
    # Ready without the shared cache (Redis): throttles and locks count per process.
    degraded: bool
    queue_warn_threshold: int


@router.get("/health", response={200: HealthOut, 503: HealthOut, **ERRORS}, auth=None,
            operation_id="health",
            summary="Database, cache and task queue: 503 when any fails, a queue backlog "
                    "included (monitoring)")
def health(request: HttpRequest) -> Status[Any]:
    state = health_readiness()
    body = HealthOut(database=state.database, cache=state.cache,
                     queue_length=state.queue_length, queue_ok=state.queue_ok)
    return Status(200 if state.serving and state.cache and state.queue_ok else 503, body)


@router.get("/health/live", response={200: LiveOut, **ERRORS}, auth=None,
            operation_id="health_live",
            summary="Liveness: the process answers (no database or cache call)")
def live(request: HttpRequest) -> LiveOut:
    return LiveOut(status="ok")


@router.get("/health/ready", response={200: ReadyOut, 503: ReadyOut, **ERRORS}, auth=None,
            operation_id="health_ready",
            summary="Readiness: 503 when the database fails; the cache (Redis) down is "
                    "reported as degraded and a queue backlog as queue_ok false, both 200")
def ready(request: HttpRequest) -> Status[Any]:
    state = health_readiness()
    body = ReadyOut(ready=state.serving, degraded=state.degraded, database=state.database,
                    cache=state.cache, queue_length=state.queue_length, queue_ok=state.queue_ok,
                    queue_warn_threshold=settings.QUEUE_WARN_THRESHOLD)
    return Status(200 if state.serving else 503, body)
