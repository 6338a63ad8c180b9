"""Row: WebSocket fan-out, 1,000 member sockets on one web worker, one event to each.

Members' pages hold /ws/member/ open (api/realtime.py; Django Channels, Redis channel layer).
The sockets are opened straight on the first web instance's unix socket, so every one lands
on its one worker process (WEB_WORKERS=1), which is restarted first: a fresh worker, far from
gunicorn's --max-requests, whose resident memory is read before and after the sockets open.
Each socket belongs to its own member (a session made in the database, as a login would).

The event goes out through the production path for many members at once: every member's
subscription ends and the minute job's service (subscriptions_notify_expired) pushes
"subscription_expired" to each. The service is called in a manage.py shell with `now` just
after the ends (set a minute ahead, so the worker's own minute run cannot take them first);
the time just before the call is the send time, and each socket's delivery latency is its
receipt time minus that (one host, one clock).
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from websockets.asyncio.client import ClientConnection, unix_connect

from bench.measure import Context, Measurement
from tests.deploy.stack import WEB_STOP_TIMEOUT, Stack, wait_for

GOAL_P95_MS = 200.0
CONNECT_CONCURRENCY = 50

# Members with a running subscription and a session each (written to OUT, one per line).
SEED = """
from datetime import timedelta
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.hashers import make_password
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone
from django.utils.crypto import get_random_string
from core.models import Role, Subscription, User
from core.services.products import product_create
admin = User.objects.get(username="admin")
product = product_create(actor=admin, fields={"name": "WS bench", "slug": "wsbench"})
role = Role.objects.get(key="user")
unusable = make_password(None)
users = User.objects.bulk_create([User(username=f"ws_{i}", password=unusable, role=role)
                                  for i in range(COUNT)], batch_size=1000)
now = timezone.now()
Subscription.objects.bulk_create([Subscription(user=u, product=product, started_at=now,
                                               expires_at=now + timedelta(days=1))
                                  for u in users], batch_size=1000)
backend = "django.contrib.auth.backends.ModelBackend"
sessions, keys = [], []
for user in users:
    key = get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789")
    data = {SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: backend,
            HASH_SESSION_KEY: user.get_session_auth_hash()}
    sessions.append(Session(session_key=key, session_data=SessionStore().encode(data),
                            expire_date=now + timedelta(days=1)))
    keys.append(key)
Session.objects.bulk_create(sessions, batch_size=1000)
open(OUT, "w").write("\\n".join(keys) + "\\n")
print(settings.SESSION_COOKIE_NAME, product.pk)
"""

# Every member's subscription ends a minute from now; the service runs as if then.
SEND = """
import json, time
from datetime import timedelta
from django.utils import timezone
from core.models import Subscription
from core.services.realtime import subscriptions_notify_expired
# The job runs in the long-lived worker, where the layer's modules are loaded long before: a
# fresh shell would time their import too.
from channels.layers import get_channel_layer
get_channel_layer()
ends = timezone.now() + timedelta(minutes=1)
Subscription.objects.filter(product_id=PRODUCT).update(expires_at=ends)
sent = time.time()
pushed = subscriptions_notify_expired(now=ends + timedelta(milliseconds=1))
print(json.dumps({"sent": sent, "returned": time.time(), "pushed": pushed}))
"""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def restart_web1(stack: Stack) -> int:
    """A fresh web1 worker (its pid): far from --max-requests, memory not yet grown by the
    HTTP rounds."""
    web = next(p for p in stack.processes if p.name == "web1" and p.popen.poll() is None)
    stack.stop(web)
    stack.processes.remove(web)  # bench.run's web_worker_pid looks web1 up by name
    sock = stack.root / "web1.sock"
    sock.unlink(missing_ok=True)
    web = stack.start_unit("web1", stack.root / "units1" / "zspb-web.service",
                           WEB_STOP_TIMEOUT)
    wait_for(sock.exists, 60, "web1 socket")
    wait_for(lambda: [pid for pid in web.group() if pid != web.pgid], 30, "web1 worker")
    return next(pid for pid in web.group() if pid != web.pgid)


async def _open(stack: Stack, cookie: str, gate: asyncio.Semaphore) -> ClientConnection:
    async with gate:
        socket_ = await unix_connect(
            str(stack.root / "web1.sock"), f"ws://127.0.0.1:{stack.port}/ws/member/",
            additional_headers={"Cookie": cookie, "Origin": stack.url},
            ping_interval=None, open_timeout=60, close_timeout=5)
        # The pong proves the socket is logged in and its member's group joined (a refused
        # one is closed with 4401 instead).
        await socket_.send(json.dumps({"type": "ping"}))
        answer = json.loads(await asyncio.wait_for(socket_.recv(), 30))
        if answer.get("event") != "pong":
            raise RuntimeError(f"no pong: {answer}")
        return socket_


async def _receive(socket_: ClientConnection, timeout: float) -> float | None:
    try:
        message = json.loads(await asyncio.wait_for(socket_.recv(), timeout))
    except (TimeoutError, asyncio.TimeoutError):
        return None
    received = time.time()
    return received if message.get("event") == "subscription_expired" else None


@dataclass
class Run:
    before_kib: int
    after_kib: int
    opened_s: float
    sent: dict[str, float]  # sent, returned (time.time()), pushed
    latencies_ms: list[float]


async def _run(ctx: Context, cookies: list[str], product_id: int, pid: int) -> Run:
    stack = ctx.stack
    # One socket first: the worker's Channels and Redis code is loaded before the baseline.
    warm = await _open(stack, cookies[0], asyncio.Semaphore(1))
    await asyncio.sleep(0.5)
    before = rss_kib(pid)
    started = time.monotonic()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    sockets = [warm, *await asyncio.gather(*(_open(stack, c, gate) for c in cookies[1:]))]
    opened = time.monotonic() - started
    await asyncio.sleep(1.0)
    after = rss_kib(pid)
    ctx.say(f"websocket: {len(sockets)} sockets open in {opened:.1f} s; sending")
    receivers = [asyncio.ensure_future(_receive(s, 30)) for s in sockets]
    # The measuring client's own full garbage collections (up to ~190 ms with 1,000 sockets
    # open) would land in the burst and be counted as the site's delivery time.
    gc.collect()
    gc.disable()
    try:
        out = await asyncio.to_thread(stack.manage, "shell", "-c",
                                      f"PRODUCT = {product_id}\n{SEND}")
        sent = json.loads(out.strip().splitlines()[-1])
        received = await asyncio.gather(*receivers)
    finally:
        gc.enable()
    await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)
    return Run(before_kib=before, after_kib=after, opened_s=opened, sent=sent,
               latencies_ms=[(r - sent["sent"]) * 1000 for r in received if r is not None])


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def measure(ctx: Context) -> list[Measurement]:
    stack = ctx.stack
    count = 200 if ctx.quick else 1_000
    out = ctx.root / "ws_sessions.txt"
    ctx.say(f"websocket: {count} members with a session each")
    cookie_name, product_id = stack.manage(
        "shell", "-c", f"OUT = {str(out)!r}\nCOUNT = {count}\n{SEED}").split()[-2:]
    cookies = [f"{cookie_name}={key}" for key in out.read_text().split()]
    pid = restart_web1(stack)
    run = asyncio.run(_run(ctx, cookies, int(product_id), pid))
    latencies, sent = run.latencies_ms, run.sent
    before, after = run.before_kib, run.after_kib
    delivered = len(latencies)
    first = min(latencies) if latencies else float("nan")
    returned_ms = (sent["returned"] - sent["sent"]) * 1000
    p50 = statistics.median(latencies) if latencies else float("nan")
    p95 = percentile(latencies, 0.95) if latencies else float("nan")
    worst = max(latencies) if latencies else float("nan")
    per_socket = (after - before) / count
    met = delivered == count and p95 <= GOAL_P95_MS
    return [Measurement(
        title=f"WebSocket fan-out: {count:,} sockets on one worker, one event each",
        figure=f"p95 {p95:.0f} ms ({delivered:,}/{count:,} delivered)",
        baseline="—",
        ratio="—",
        goal=f"p95 delivery ≤ {GOAL_P95_MS:g} ms; memory per socket reported",
        met=met,
        details=[
            f"scale: {count:,} members, one socket each, on web1's one worker (unix socket, "
            f"no nginx){' (bench-quick)' if ctx.quick else ''}; event: subscription_expired "
            "from subscriptions_notify_expired (the minute job's service)",
            f"delivery latency (send call to receipt): p50 {p50:.0f} ms, p95 {p95:.0f} ms, "
            f"max {worst:.0f} ms; the service returned after {returned_ms:.0f} ms (pushed "
            f"{sent['pushed']}), the first socket heard after {first:.0f} ms",
            f"memory: worker RSS {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB with "
            f"the sockets open: {per_socket:.0f} KiB per socket",
            f"opening: {count:,} sockets (handshake, session login, group join, a ping) in "
            f"{run.opened_s:.1f} s, {CONNECT_CONCURRENCY} at a time",
        ],
        profile=None if met else split(returned_ms=returned_ms, first=first, worst=worst,
                                       count=count),
    )]


def split(*, returned_ms: float, first: float, worst: float, count: int) -> str:
    """Where the time went: the sending service, then the one worker's delivery."""
    return (
        f"- sending (subscriptions_notify_expired: query and {count:,} group sends to the "
        f"channel layer): {returned_ms:.0f} ms\n"
        f"- the worker's delivery, from the first socket ({first:.0f} ms) to the last "
        f"({worst:.0f} ms): {worst - first:.0f} ms\n"
        "- the layer (core/channel_layer.py) pushes the batch in two Redis round trips and the "
        "worker takes up to 1,000 messages per round trip; what is left is per socket, one "
        "after the other on the worker's one event loop: Channels' receive and dispatch "
        "(several tasks and futures a message) and uvicorn's send, about 0.2-0.25 ms a socket "
        "on this 2-core machine, which the bench's own client shares. A full garbage "
        "collection that falls in the burst adds 0.3-0.5 s at 1,000 sockets (config/asgi.py "
        "makes that rare)\n")

