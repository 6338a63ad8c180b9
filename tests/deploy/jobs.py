"""Jobs that the worker tests enqueue by dotted path (the worker imports them from the tree)."""

from __future__ import annotations

import time
from pathlib import Path


def mark_then_sleep(marker: str, seconds: float) -> None:
    """Writes `marker` once the job is really running in a worker process, then outlasts any
    stop deadline: a test waits for the file, not for the broker's lock, which moves as soon as
    the cluster's pusher has taken the job (before a worker process runs it)."""
    Path(marker).write_text("running")
    time.sleep(seconds)
