"""Fixed-window throttles in the shared cache (Redis in production), so every web worker and
host counts together. Used by the API, the pages and the bot endpoints alike.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import caches

from core.cache import count_in_window
from core.crypto import digest
from core.errors import RateLimited
from core.services.logs import Category, log_event


def rate_limit(*, scope: str, ident: str) -> None:
    """Count one attempt for `ident` in `scope`; raise RateLimited past the configured rate."""
    rate = settings.ZSPB.rate_limits[scope]
    now = time.time()
    window = int(now // rate.seconds)
    key = f"rl:{scope}:{digest(ident, purpose='ratelimit')[:32]}:{window}"
    count = count_in_window(caches["default"], key, rate.seconds + 1)
    if count > rate.count:
        retry_after = max(1, int(rate.seconds - (now % rate.seconds)))
        if count == rate.count + 1:  # journal the first refusal of a window, not every one
            log_event(category=Category.USER, action="ratelimit.exceeded",
                      data={"scope": scope, "limit": f"{rate.count}/{rate.seconds}s"})
        raise RateLimited(retry_after=retry_after)
