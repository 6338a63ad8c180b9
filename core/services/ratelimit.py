"""Fixed-window throttles in the shared cache (Redis in production), so every web worker and
host counts together. Used by the API, the pages and the bot endpoints alike.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from django.conf import settings
from django.core.cache import caches

from core.cache import ThrottleCounter, counts_in_windows
from core.cache_split import counts_sent
from core.crypto import digest
from core.errors import RateLimited
from core.services.logs import Category, log_event


def rate_limit(*, scope: str, ident: str) -> None:
    """Count one attempt for `ident` in `scope`; raise RateLimited past the configured rate."""
    rate_limits(checks=[(scope, ident)])


def rate_limits(*, checks: Sequence[tuple[str, str]]) -> None:
    """rate_limit for several (scope, ident) throttles of one attempt, in order, in one round
    trip to the cache: the first throttle past its rate refuses, and the ones after it do not
    count the refused attempt (as when each was called in turn)."""
    now = time.time()
    counts = counts_in_windows(caches["default"], _counters(checks, now))
    _enforce(checks, counts, now)


@contextmanager
def rate_limits_around(*, checks: Sequence[tuple[str, str]]) -> Iterator[None]:
    """rate_limits whose round trip to the cache overlaps the block: the attempt is counted as
    the block starts and refused (RateLimited) as it ends, so the block waits on the database
    while Redis counts. The block must only read: a refused attempt's block has run, and
    anything it wrote or journaled would stay. An exception from the block is raised as is."""
    now = time.time()
    pending = counts_sent(caches["default"], _counters(checks, now))
    try:
        yield
    except BaseException:
        pending.discard()
        raise
    _enforce(checks, pending.result(), now)


def _counters(checks: Sequence[tuple[str, str]], now: float) -> list[ThrottleCounter]:
    counters: list[ThrottleCounter] = []
    for scope, ident in checks:
        rate = settings.ZSPB.rate_limits[scope]
        window = int(now // rate.seconds)
        key = f"rl:{scope}:{digest(ident, purpose='ratelimit')[:32]}:{window}"
        counters.append(ThrottleCounter(key=key, timeout=rate.seconds + 1, limit=rate.count))
    return counters


def _enforce(checks: Sequence[tuple[str, str]], counts: Sequence[int], now: float) -> None:
    for (scope, _ident), count in zip(checks, counts, strict=False):
        rate = settings.ZSPB.rate_limits[scope]
        if count > rate.count:
            retry_after = max(1, int(rate.seconds - (now % rate.seconds)))
            if count == rate.count + 1:  # journal the first refusal of a window, not every one
                log_event(category=Category.USER, action="ratelimit.exceeded",
                          data={"scope": scope, "limit": f"{rate.count}/{rate.seconds}s"})
            raise RateLimited(retry_after=retry_after)
