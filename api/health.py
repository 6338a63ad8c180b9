from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.http import HttpRequest
from django_q.models import OrmQ
from ninja import Router, Schema, Status

from api.errors import ERRORS

router = Router(tags=["operations"])


class HealthOut(Schema):
    database: bool
    cache: bool
    queue_length: int
    queue_ok: bool


@router.get("/health", response={200: HealthOut, 503: HealthOut, **ERRORS}, auth=None,
            operation_id="health", summary="Liveness of database, cache and task queue")
def health(request: HttpRequest) -> Status[Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        database = True
        queue_length = OrmQ.objects.count()
    except DatabaseError:
        database, queue_length = False, -1
    try:
        cache.set("zspb:health", "1", 5)
        cache_ok = cache.get("zspb:health") == "1"
    except Exception:  # any cache backend failure means unhealthy, whatever its type
        cache_ok = False
    queue_ok = 0 <= queue_length <= settings.QUEUE_WARN_THRESHOLD
    body = HealthOut(database=database, cache=cache_ok, queue_length=queue_length,
                     queue_ok=queue_ok)
    return Status(200 if database and cache_ok and queue_ok else 503, body)
