"""The production configuration on loopback: nginx (the rendered site) in front of two
gunicorn/uvicorn instances on unix sockets, two job workers, PostgreSQL and Redis, all started
from the rendered systemd units with DEBUG off. Everything a member does goes through nginx.

Needs nginx (CI installs it in .ci/deploy-checks); without it the test skips, unless
ZSPB_REQUIRE_BROWSER=1 (CI), which makes a missing tool a failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
import yaml
from django.conf import settings
from websockets.sync.client import connect as ws_connect

from tests.browser import require_or_skip
from tests.deploy.stack import (
    BASE,
    WEB_STOP_TIMEOUT,
    WORKER_STOP_TIMEOUT,
    Stack,
    wait_for,
)

pytestmark = pytest.mark.postgres
LOADER_MB = 200
PASSWORD = "correct horse battery staple 9"

# Run inside the stack (manage.py shell): what staff would do in the admin before members come.
SETUP = """
import json
from datetime import timedelta
from django.core.files import File
from django.utils import timezone
from django_q.models import Schedule
from core.models import User
from core.services.keys import keys_generate
from core.services.products import product_create
from core.services.releases import release_create, release_publish
admin = User.objects.get(username="admin")
product = product_create(actor=admin, fields={"name": "Smoke", "slug": "smoke"})
keys = keys_generate(actor=admin, product=product, duration=timedelta(days=30), count=2)
with open(LOADER, "rb") as handle:
    release = release_create(actor=admin, uploaded_file=File(handle, name="loader.exe"),
                             version="1.0.0")
release_publish(actor=admin, release_id=release.pk, published=True)
# Every schedule falls due at once, while both workers start: each must run once, not twice.
due = Schedule.objects.update(next_run=timezone.now() - timedelta(seconds=1))
print(json.dumps({"keys": keys.codes, "sha256": release.sha256, "schedules": due}))
"""


def _pg(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True)


def _table_digests(url: str) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent digest of every row, per table."""
    digests = {}
    with _pg(url) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
        for table in tables:
            count, md5 = conn.execute(
                f'SELECT count(*), md5(coalesce(string_agg(t::text, \'|\' ORDER BY t::text), '  # noqa: S608
                f"'')) FROM \"{table}\" t").fetchone()
            digests[table] = (count, md5)
    return digests


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    if not shutil.which("nginx"):
        require_or_skip("nginx is not installed (apt-get install nginx)")
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        require_or_skip("the production smoke test needs Redis (REDIS_URL)")
        pytest.skip("no REDIS_URL")
    db = settings.DATABASES["default"]
    # A Redis database of its own (emptied): the stack's throttles and locks start from
    # nothing, and the suite's own cache is left alone.
    stack = Stack.create(
        tmp_path, server=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:"
                         f"{db['PORT'] or 5432}",
        redis_url=f"redis://{urlsplit(redis_url).netloc}/9", prefix="zspb_smoke")
    try:
        yield stack
    finally:
        stack.destroy()


def _client(stack: Stack, **kwargs: Any) -> httpx.Client:
    return httpx.Client(base_url=stack.url, timeout=30, **kwargs)


def _csrf(client: httpx.Client) -> dict[str, str]:
    token = client.get("/api/auth/csrf").json()["csrf_token"]
    return {"X-CSRFToken": token}


def test_production_stack_on_loopback(stack: Stack) -> None:
    root = stack.root
    # --- What init.sh does after writing .env -------------------------------------------------
    boot = stack.install(web_instances=2, admin_password=PASSWORD)
    invite = re.search(r"register\?invite=(\S+)", boot)
    assert invite, boot
    loader = root / "loader-source.exe"
    with loader.open("wb") as out:
        block = os.urandom(1024 * 1024)
        for i in range(LOADER_MB):
            out.write(block[i:] + block[:i])
    setup = json.loads(stack.manage(
        "shell", "-c", f"LOADER = {str(loader)!r}\n{SETUP}").strip().splitlines()[-1])
    assert setup["schedules"] >= 3

    # --- The services, as their units say -----------------------------------------------------
    workers_started = time.time()
    started = stack.serve(web_instances=2, workers=2)
    webs, workers, (nginx,) = started["web"], started["worker"], started["nginx"]

    # --- A member's journey through nginx ------------------------------------------------------
    member = _client(stack)
    spoofed = {"X-Forwarded-For": "203.0.113.9"}
    response = member.post("/api/auth/register", headers={**_csrf(member), **spoofed}, json={
        "invite": invite.group(1), "username": "smoke_member", "password": PASSWORD})
    assert response.status_code in (200, 201), response.text
    member.post("/api/auth/logout", headers=_csrf(member))
    response = member.post("/api/auth/login", headers=_csrf(member),
                           json={"username": "smoke_member", "password": PASSWORD})
    assert response.status_code == 200, response.text
    assert "X-Request-ID" in response.headers  # the app answered, through nginx
    # The page a member lands on, with the site's headers.
    page = member.get("/")
    assert page.status_code == 200 and "smoke_member" in page.text
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]

    # The address the app recorded is nginx's view of the client, not the spoofed header.
    recorded = stack.manage("shell", "-c", (
        "from core.models import User; from core.crypto import digest; "
        "u = User.objects.get(username='smoke_member'); "
        "print(u.registration_ip_digest == digest('127.0.0.1', purpose='ip'), "
        "u.registration_ip_digest == digest('203.0.113.9', purpose='ip'))"))
    assert recorded.split()[-2:] == ["True", "False"], recorded

    # Redeem a key; the member's open page hears of it over the WebSocket, through nginx.
    cookies = "; ".join(f"{k}={v}" for k, v in member.cookies.items())
    ws_url = f"ws://127.0.0.1:{stack.port}/ws/member/"
    with ws_connect(ws_url, additional_headers={"Cookie": cookies,
                                                "Origin": stack.url}) as socket_:
        socket_.send(json.dumps({"type": "ping"}))
        assert json.loads(socket_.recv(timeout=10))["event"] == "pong"
        # Idle past the channel layer's 5 s blocking pop: the socket must still be served.
        time.sleep(6)
        socket_.send(json.dumps({"type": "ping"}))
        assert json.loads(socket_.recv(timeout=10))["event"] == "pong"
        response = member.post("/api/keys/redeem", headers=_csrf(member),
                               json={"key": setup["keys"][0].lower()})
        assert response.status_code == 200, response.text
        event = json.loads(socket_.recv(timeout=10))
    assert event["event"] == "key_redeemed" and event["data"]["product"] == "smoke"

    # A static file comes from nginx (no request id: the app never saw it).
    static = member.get("/static/zspb/js/site.js")
    assert static.status_code == 200 and "X-Request-ID" not in static.headers
    assert static.headers["Cache-Control"] == "max-age=604800"

    # The loader: the app checks the signed link, nginx sends 200 MB. Both web instances are
    # frozen (SIGSTOP) after the first megabyte and the download still completes.
    link = member.post("/api/loader/download-link", headers=_csrf(member))
    assert link.status_code == 200, link.text
    sha = hashlib.sha256()
    received = 0
    with member.stream("GET", link.json()["url"]) as download:
        assert download.status_code == 200
        assert int(download.headers["Content-Length"]) == LOADER_MB * 1024 * 1024
        assert "X-Accel-Redirect" not in download.headers
        chunks = download.iter_bytes(1024 * 1024)
        first = next(chunks)
        sha.update(first)
        received += len(first)
        for web in webs:
            web.signal_group(signal.SIGSTOP)
        try:
            for chunk in chunks:
                sha.update(chunk)
                received += len(chunk)
        finally:
            for web in webs:
                web.signal_group(signal.SIGCONT)
    assert received == LOADER_MB * 1024 * 1024 and sha.hexdigest() == setup["sha256"]
    # The internal location cannot be asked for directly.
    assert member.get("/protected-loader/").status_code == 404

    # The app's own throttles count across both web instances (in Redis): of 16 wrong keys,
    # nginx spreading them over both, only the account's limit gets through.
    count, per = yaml.safe_load((BASE / "config.yaml").read_text())[
        "rate_limits"]["redeem_account"].split("/")
    limit = int(count)
    assert per == "m" and limit < 16
    logs_before = {web.name: web.log.read_text().count("/api/keys/redeem") for web in webs}
    # One token first: nginx alternates instances per request, and a token fetch between
    # redeems would send every redeem to the same one.
    token = _csrf(member)
    window = int(time.time() // 60)
    answers = Counter(member.post("/api/keys/redeem", headers=token,
                                  json={"key": f"ZSPB-{i:05d}-00000-00000-00000"}).status_code
                      for i in range(16))
    windows = int(time.time() // 60) - window + 1  # a minute boundary may fall inside
    served = {web.name: web.log.read_text().count("/api/keys/redeem") - logs_before[web.name]
              for web in webs}
    assert all(n > 0 for n in served.values()), served
    # Counted per process, each instance would let its own `limit` through.
    assert answers[404] <= limit * windows and set(answers) <= {404, 429}, answers
    if windows == 1:
        assert answers[429] >= 16 - limit, answers

    # Hammering login: nginx answers 429 itself, whatever X-Forwarded-For says.
    hammer = _client(stack)
    headers = _csrf(hammer)
    answered_by = []
    for i in range(25):
        answer = hammer.post("/api/auth/login", json={"username": "smoke_member",
                                                      "password": "wrong password"},
                             headers={**headers, "X-Forwarded-For": f"198.51.100.{i}"})
        # The app answers every request it sees with a request id; nginx's refusals have none.
        who = "app" if "X-Request-ID" in answer.headers else "nginx"
        answered_by.append((who, answer.status_code))
        if who == "nginx":  # in the API's error shape all the same
            assert answer.json()["code"] == "rate_limited", answer.text
            assert answer.headers["Retry-After"] == "60"
    # 10 a minute with a burst of 10: after the first 11 or so, nginx refuses the rest (the
    # app's own throttle and lock-out refuse some of those it still sees).
    assert answered_by.count(("nginx", 429)) >= 10, answered_by
    assert all(status in (401, 403, 429) for who, status in answered_by if who == "app"), \
        answered_by
    # Members already in keep working.
    assert member.get("/api/auth/me").status_code == 200

    # --- The periodic jobs ran once each, not once per worker -----------------------------------
    def schedules_ran() -> bool:
        out = stack.manage("shell", "-c", (
            "from django_q.models import Schedule, Task; "
            "print(sum(1 for s in Schedule.objects.all() "
            "if not Task.objects.filter(group=s.name).exists()))"))
        return out.split()[-1] == "0"

    wait_for(schedules_ran, 90, "a run of every schedule")
    elapsed_minutes = (time.time() - workers_started) / 60
    runs = json.loads(stack.manage("shell", "-c", (
        "import json; from django_q.models import Schedule, Task; "
        "print(json.dumps({s.name: [s.schedule_type, s.minutes, "
        "Task.objects.filter(group=s.name).count()] for s in Schedule.objects.all()}))"
    )).strip().splitlines()[-1])
    for name, (kind, minutes, count) in runs.items():
        period = (minutes or 1) if kind == "I" else None  # "I": every N minutes
        allowed = 1 + int(elapsed_minutes // period) if period else 1
        assert 1 <= count <= allowed, (name, count, allowed, elapsed_minutes)

    # --- SIGTERM, as systemd stops each unit: every process gone within its timeout -----------
    stopped = {process.name: stack.stop(process) for process in [*webs, *workers]}
    stack.stop(nginx, signal.SIGQUIT)
    for name, seconds in stopped.items():
        limit = WEB_STOP_TIMEOUT if name.startswith("web") else WORKER_STOP_TIMEOUT
        assert seconds < limit, (name, seconds)

    # --- Backup, then restore into a fresh database: the same rows ----------------------------
    stack.manage("backup", "--output", str(root / "backups"))
    (archive,) = (root / "backups").glob("*.zspb-backup")
    restored_url = stack.restored_url
    with _pg(stack.database_url.rsplit("/", 1)[0] + "/postgres") as conn:
        conn.execute(f'CREATE DATABASE "{restored_url.rsplit("/", 1)[1]}"')
    restored_env = root / "env.restored"
    restored_env.write_text(
        re.sub(r"(?m)^DATABASE_URL=.*$", f"DATABASE_URL={restored_url}",
               re.sub(r"(?m)^MEDIA_ROOT=.*$", f"MEDIA_ROOT={root}/restored-media",
                      (root / "env").read_text())))
    stack.manage("restore", str(archive), env_file=restored_env)
    original = _table_digests(stack.database_url)
    assert _table_digests(restored_url) == original
    assert original["core_user"][0] == 2 and original["core_subscription"][0] == 1
    restored_loader = next((root / "restored-media").rglob("*.exe"))
    assert restored_loader.stat().st_size == LOADER_MB * 1024 * 1024

    # Nothing went wrong on the way: no traceback in any process's output.
    for process in stack.processes:
        assert "Traceback" not in process.log.read_text(), process.log.read_text()[-3000:]
