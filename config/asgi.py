"""ASGI entry point: HTTP goes to Django, WebSockets to the member consumer (api/realtime.py).

Served by uvicorn locally (`make run`) and by `gunicorn -k config.workers.UvicornWorker
config.asgi:application` in production.
"""

from __future__ import annotations

import gc
import os
from typing import Any
from urllib.parse import ParseResult

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Sets Django up; the consumer and the Channels middleware import models, so they come after.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path  # noqa: E402

from api.realtime import MemberConsumer  # noqa: E402


class AllowedHostsOriginValidator(OriginValidator):
    """Channels' AllowedHostsOriginValidator, reading ALLOWED_HOSTS at each connection.

    The stock one copies the list when this module is imported, so a later change of the
    setting (tests, override_settings) would not apply; the rule itself is the same: the
    Origin's host must be one the site answers to, and a missing Origin is refused.
    """

    def __init__(self, application: Any) -> None:
        super().__init__(application, [])

    def valid_origin(self, parsed_origin: ParseResult | None) -> bool:
        hosts = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not hosts:
            hosts = ["localhost", "127.0.0.1", "[::1]"]
        self.allowed_origins = hosts
        return bool(super().valid_origin(parsed_origin))


websocket_urlpatterns = [
    path("ws/member/", MemberConsumer.as_asgi()),
]

application = ProtocolTypeRouter({
    "http": django_asgi_app,
    "websocket": AllowedHostsOriginValidator(
        AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
    ),
})


# The garbage collector, for a worker that holds many WebSockets (issue 12). Each open socket
# keeps about 200 tracked objects alive, so a worker with 1,000 sockets has a heap of some
# 350,000 objects, and with the default thresholds a full collection (0.25-0.5 s at that size on
# the bench machine) came due during nearly every fan-out: the burst of a thousand deliveries
# allocates enough to trigger one, and the sockets opened since the last one make it due.
# Measured with 1,000 sockets: without this, a 490 ms collection ran as the events arrived
# (p95 885 ms); with it, none did in the runs made (p95 358 and 430 ms, load 7.3 and 2.8).
# - collect, then freeze what the site has built by now (Django, the URLconf, the apps:
#   about 125,000 objects that live as long as the process): full collections skip them;
# - a young generation of 10,000 allocations instead of 700: young and full collections
#   about 14 times rarer (a full one still needs the heap grown by a quarter since the last).
GC_THRESHOLDS = (10_000, 10, 10)
gc.collect()
gc.freeze()
gc.set_threshold(*GC_THRESHOLDS)
