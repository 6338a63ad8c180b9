"""config/asgi.py: the garbage collector of a web worker (issue 12, WebSocket fan-out)."""

from __future__ import annotations

import gc


def test_the_site_is_frozen_and_collections_are_rarer() -> None:
    from config import asgi

    assert gc.get_threshold() == asgi.GC_THRESHOLDS
    assert asgi.GC_THRESHOLDS[0] > 700  # Python's default young generation
    # Django, the URLconf and the consumer, built at import, are out of every collection.
    assert gc.get_freeze_count() > 10_000
