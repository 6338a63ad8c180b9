"""How uvicorn serves the site's WebSocket, in production (the gunicorn worker class of
zspb-web) and in `make run` alike.

- websockets' sans-I/O implementation, the one the test suite serves with: it sent the
  fan-out's 1,000 events in about four fifths of the time the default implementation took.
- No permessage-deflate: the member pages' events are a few hundred bytes of JSON, and each
  socket kept a zlib state of its own (91 KiB per socket with it, 50 KiB without, measured by
  bench/websocket.py).
- Client messages up to WS_MAX_SIZE: pages only send pings.
"""

from __future__ import annotations

from typing import Any

from uvicorn_worker import UvicornWorker as _UvicornWorker

WS_IMPLEMENTATION = "websockets-sansio"
WS_MAX_SIZE = 64 * 1024
WS_PER_MESSAGE_DEFLATE = False


class UvicornWorker(_UvicornWorker):
    CONFIG_KWARGS: dict[str, Any] = {
        **_UvicornWorker.CONFIG_KWARGS,
        "ws": WS_IMPLEMENTATION,
        "ws_max_size": WS_MAX_SIZE,
        "ws_per_message_deflate": WS_PER_MESSAGE_DEFLATE,
    }
