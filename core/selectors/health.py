"""Reads behind the health endpoints: is the database answering, the cache, the queue length."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.db import DatabaseError, connection
from django_q.models import OrmQ

from core.cache import cache_reachable


@dataclass(frozen=True)
class Readiness:
    database: bool
    cache: bool
    queue_length: int  # -1 when the database cannot say
    queue_ok: bool

    @property
    def serving(self) -> bool:
        """Whether this node can serve requests: the database answers. Redis down is not a
        reason to leave the balancer: the cache falls back to a per-process one and the site
        keeps serving (core.cache), so every node would leave at once, for nothing. A queue
        backlog is the worker's problem."""
        return self.database

    @property
    def degraded(self) -> bool:
        """Serving without something it should have: the shared cache (Redis) is down, so
        throttles and locks count per process until it is back."""
        return not self.cache


def health_readiness() -> Readiness:
    """Database, cache and task-queue backlog, each failing on its own without raising."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        database = True
        queue_length = OrmQ.objects.count()
    except DatabaseError:
        database, queue_length = False, -1
    try:
        cache_ok = cache_reachable(caches["default"])
    except Exception:  # any cache backend failure means unhealthy, whatever its type
        cache_ok = False
    queue_ok = 0 <= queue_length <= settings.QUEUE_WARN_THRESHOLD
    return Readiness(database=database, cache=cache_ok, queue_length=queue_length,
                     queue_ok=queue_ok)
