"""Run the django-q2 cluster with a shutdown that always ends within a bounded time.

`manage.py qcluster` can hang for good on SIGTERM: its main process answers the signal by
setting a multiprocessing Event the sentinel process waits on. When the same SIGTERM also
reached the sentinel (a signal to the whole process group or cgroup: `kill -- -PGID`, systemd's
default KillMode, `pkill -f qcluster`), the sentinel dies (it keeps SIGTERM's default action)
while counted as a waiter of that Event, and `Event.set()` in the main process then waits
forever for it to wake. Measured here: three group SIGTERMs out of three left the main process
alive after 40 s; a SIGTERM to the main process alone stopped it in about 1.5 s.

This command starts the same cluster, but handles SIGTERM/SIGINT in its own loop:
  - if the sentinel died with the signal, nothing is left to stop gracefully: the remaining
    children are killed and the command exits at once;
  - otherwise the cluster is stopped as qcluster would (no new job taken, running jobs
    finished), under a watchdog that kills whatever is left after `--stop-timeout` seconds,
    which the systemd unit keeps below its TimeoutStopSec.
A job cut off this way stays in the ORM broker and is delivered again after Q_CLUSTER["retry"].
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django_q.cluster import Cluster

from core.proctable import descendants

logger = logging.getLogger("zspb.worker")

# How long a signal sent to the whole group takes to kill the sentinel too; after it we can
# tell "the group was signalled" from "only we were".
_SIGNAL_SETTLE_SECONDS = 0.3


def _kill_children() -> None:
    """SIGKILL every process this one started, and theirs (the sentinel's pool)."""
    for pid in descendants(os.getpid()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for child in multiprocessing.active_children():
        child.join(timeout=1)


class Command(BaseCommand):
    help = "Run the background job cluster (django-q2); stops within --stop-timeout on SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
        default = int(str(settings.Q_CLUSTER.get("timeout", 60))) + 15
        parser.add_argument(
            "--stop-timeout", type=float, default=default,
            help=f"Seconds a graceful stop may take before the rest is killed "
                 f"(default {default}: the job timeout plus a margin).")

    def handle(self, *args: Any, **options: Any) -> None:
        stop_timeout: float = options["stop_timeout"]
        requested = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            # Only note it: the stop itself runs in the main loop, never inside a handler.
            requested.set()

        cluster = Cluster()
        # Cluster() installed its own handlers (the ones that can hang); ours replace them.
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        cluster.start()
        sentinel = cluster.sentinel
        assert sentinel is not None
        while not requested.wait(0.5):
            if not sentinel.is_alive():
                # Died on its own (a crash, the OOM killer): exit non-zero so systemd restarts us.
                logger.error("The job cluster's sentinel exited (code %s); stopping.",
                             sentinel.exitcode)
                _kill_children()
                raise SystemExit(1)
        self._stop(cluster, stop_timeout)

    def _stop(self, cluster: Cluster, stop_timeout: float) -> None:
        sentinel = cluster.sentinel
        assert sentinel is not None
        time.sleep(_SIGNAL_SETTLE_SECONDS)
        if not sentinel.is_alive():
            logger.info("The job cluster was signalled as a whole; its processes are stopped.")
            _kill_children()
            return

        fired = threading.Event()

        def watchdog() -> None:
            logger.error("The job cluster did not stop within %.0f s; killing what is left.",
                         stop_timeout)
            fired.set()
            _kill_children()
            # The main thread may be blocked for good inside django-q2's stop().
            os._exit(1)

        timer = threading.Timer(stop_timeout, watchdog)
        timer.daemon = True
        timer.start()
        started = time.monotonic()
        cluster.stop()
        timer.cancel()
        if fired.is_set():
            # The watchdog's kill ended the sentinel, so stop() returned: exit as the watchdog
            # would have, not 0 (CI saw this main thread win the race to the exit).
            _kill_children()
            raise SystemExit(1)
        # Workers the sentinel already abandoned (a reincarnated one, say) must not outlive us.
        _kill_children()
        logger.info("The job cluster stopped in %.1f s.", time.monotonic() - started)
