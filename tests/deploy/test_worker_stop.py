"""`manage.py worker` (the zspb-worker unit's command) stops within its deadline on SIGTERM:
sent to its main process (systemd's KillMode=mixed), to its whole process group (where
django-q2's own qcluster hangs for good), and while a job outlasts the deadline."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from core.proctable import group_running

BASE = Path(settings.BASE_DIR)
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _env() -> dict[str, str]:
    db = connection.settings_dict
    url = (f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/"
           f"{db['NAME']}")
    # The test database, and this run's secrets, so the child reads the rows this test writes.
    return {**os.environ, "DATABASE_URL": url, "DEBUG": "1", "SECRET_KEY": settings.SECRET_KEY,
            "DIGEST_SECRET": settings.DIGEST_SECRET,
            "FIELD_ENCRYPTION_KEY": ",".join(settings.FIELD_ENCRYPTION_KEY),
            "BOT_API_TOKEN": settings.BOT_API_TOKEN,
            "LICENSE_SIGNING_KEY": settings.LICENSE_SIGNING_KEY, "Q_WORKERS": "2"}


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "worker", "--stop-timeout", "3"], cwd=BASE, env=_env(),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        # Ready when the sentinel has started its pool: main + sentinel + 2 workers + monitor
        # + pusher.
        while len(group_running(process.pid)) < 6:
            assert process.poll() is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline, "the worker did not start within 30 s"
            time.sleep(0.2)
        yield process
    finally:
        for pid in group_running(process.pid):
            os.kill(pid, signal.SIGKILL)
        process.wait(timeout=5)
        log.close()


def _stopped_within(process: subprocess.Popen[bytes], seconds: float) -> float:
    started = time.monotonic()
    while group_running(process.pid):
        elapsed = time.monotonic() - started
        assert elapsed < seconds, f"processes left after {elapsed:.1f} s: " \
                                  f"{group_running(process.pid)}"
        time.sleep(0.1)
    process.wait(timeout=1)
    return time.monotonic() - started


def test_sigterm_to_the_main_process_stops_every_process(
    worker: subprocess.Popen[bytes],
) -> None:
    worker.send_signal(signal.SIGTERM)
    _stopped_within(worker, 10)
    assert worker.returncode == 0


def test_sigterm_to_the_whole_group_stops_every_process(
    worker: subprocess.Popen[bytes],
) -> None:
    os.killpg(worker.pid, signal.SIGTERM)
    _stopped_within(worker, 10)


def test_a_job_outlasting_the_deadline_is_cut_off_at_the_deadline(
    worker: subprocess.Popen[bytes], tmp_path: Path,
) -> None:
    marker = tmp_path / "job-running"
    enqueue = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "from django_q.tasks import async_task; "
         f"async_task('tests.deploy.jobs.mark_then_sleep', {str(marker)!r}, 60)"],
        cwd=BASE, env=_env(), capture_output=True, text=True, check=False)
    assert enqueue.returncode == 0, enqueue.stderr
    # The broker's lock moves once the pusher has taken the job, before a worker process runs
    # it: under load SIGTERM could then find no job running (CI saw exit 0). The job's own
    # marker says it is running.
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline, "no worker ran the job within 60 s"
        time.sleep(0.1)
    worker.send_signal(signal.SIGTERM)
    # --stop-timeout 3, plus the pause that tells a group signal from a single one.
    _stopped_within(worker, 8)
    log = (tmp_path / "worker.log").read_text()
    assert worker.returncode == 1, log
    assert "did not stop within 3 s" in log
