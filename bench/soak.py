"""`make soak`: mixed traffic against the production stack on loopback for SOAK_MINUTES (30),
then a report: requests and errors per kind, latency percentiles, and the memory of every
process at the start and the end.

The stack is the smoke test's (tests/deploy/stack.py): the rendered units and nginx site, two
gunicorn/uvicorn instances, two workers, PostgreSQL and Redis, DEBUG off. Each client thread
connects from its own loopback address (127.0.0.N), so nginx's and the app's per-address
limits apply per client as they would on the internet; a 429 is counted as throttled, not as
an error. An error is a 5xx or a failed connection.

    python -m bench.soak [--minutes N] [--clients N] [--report FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import httpx
import yaml

BASE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE))

from tests.deploy.stack import Process, Stack  # noqa: E402

PASSWORD = "soak horse battery staple 7"
SAMPLE_SECONDS = 15

# Run inside the stack: one product, and per client a member with a redeemed key.
SEED = """
import json
from datetime import timedelta
from core.models import Role, User
from core.services.keys import key_redeem, keys_generate
from core.services.products import product_create
admin = User.objects.get(username="admin")
product = product_create(actor=admin, fields={"name": "Soak", "slug": "soak"})
keys = keys_generate(actor=admin, product=product, duration=timedelta(days=30), count=CLIENTS)
role = Role.objects.get(key="user")
members = []
for i, code in enumerate(keys.codes):
    user = User.objects.create_user(username=f"soak_{i}", password=PASSWORD, role=role)
    key_redeem(user=user, code=code)
    members.append({"username": user.username, "key": code})
print(json.dumps(members))
"""


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, seconds: float, outcome: str) -> None:
        with self.lock:
            self.latencies[kind].append(seconds)
            self.statuses[kind][outcome] += 1


def _outcome(response: httpx.Response) -> str:
    if response.status_code >= 500:
        return f"error {response.status_code}"
    if response.status_code == 429:
        return "throttled"
    return "ok" if response.status_code < 400 else str(response.status_code)


def client_loop(stack: Stack, index: int, member: dict[str, str], until: float,
                tally: Tally) -> None:
    transport = httpx.HTTPTransport(local_address=f"127.0.0.{10 + index}", retries=0)
    rng = random.Random(index)
    with httpx.Client(base_url=stack.url, transport=transport, timeout=30) as client:
        token = client.get("/api/auth/csrf").json()["csrf_token"]
        login = client.post("/api/auth/login", headers={"X-CSRFToken": token},
                            json={"username": member["username"], "password": PASSWORD})
        logged_in = login.status_code == 200
        hwid = f"soak-machine-{index}"
        kinds = ["licence"] * 5 + ["dashboard"] * 2 + ["subscriptions", "redeem", "static"]
        while time.monotonic() < until:
            kind = rng.choice(kinds)
            started = time.perf_counter()
            try:
                if kind == "licence":
                    response = client.post("/api/license/check", json={
                        "key": member["key"], "product": "soak", "hwid": hwid,
                        "nonce": uuid.uuid4().hex})
                elif kind == "dashboard" and logged_in:
                    response = client.get("/")
                elif kind == "subscriptions" and logged_in:
                    response = client.get("/api/subscriptions")
                elif kind == "redeem" and logged_in:
                    token = client.cookies.get("csrftoken") or token
                    response = client.post("/api/keys/redeem", headers={"X-CSRFToken": token},
                                           json={"key": "ZSPB-00000-00000-00000-00000"})
                else:
                    response = client.get("/static/zspb/js/site.js")
                outcome = _outcome(response)
            except httpx.HTTPError as exc:
                outcome = f"error ({type(exc).__name__})"
            tally.add(kind, time.perf_counter() - started, outcome)


def rss_mib(process: Process) -> float:
    total = 0
    for pid in process.group():
        try:
            with open(f"/proc/{pid}/status", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def sample_memory(stack: Stack, until: float, series: dict[str, list[float]]) -> None:
    while time.monotonic() < until:
        for process in stack.processes:
            series[process.name].append(rss_mib(process))
        time.sleep(SAMPLE_SECONDS)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def report(*, minutes: float, clients: int, tally: Tally, series: dict[str, list[float]],
           stopped: dict[str, float], commit: str) -> str:
    lines = [
        f"# Soak run, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}",
        "",
        f"{minutes:g} minutes, {clients} clients (one loopback address each), "
        f"{os.cpu_count()} CPUs. Stack: nginx, 2 gunicorn/uvicorn instances (1 worker each), "
        "2 job workers, PostgreSQL, Redis, DEBUG off.",
        "",
        "| kind | requests | ok | throttled (429) | errors | other 4xx | p50 ms | p95 ms | "
        "p99 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    total_errors = 0
    for kind in sorted(tally.latencies):
        counts = tally.statuses[kind]
        errors = sum(n for outcome, n in counts.items() if outcome.startswith("error"))
        total_errors += errors
        other = sum(n for outcome, n in counts.items() if outcome.isdigit())
        values = tally.latencies[kind]
        lines.append(f"| {kind} | {len(values)} | {counts['ok']} | {counts['throttled']} | "
                     f"{errors} | {other} | {percentile(values, 0.5):.1f} | "
                     f"{percentile(values, 0.95):.1f} | {percentile(values, 0.99):.1f} |")
    kinds: Counter[str] = Counter()
    for counts in tally.statuses.values():
        kinds.update({o: n for o, n in counts.items() if o.startswith("error")})
    detail = ", ".join(f"{o.removeprefix('error ')} x{n}" for o, n in kinds.most_common())
    lines += ["", f"Errors (5xx or failed connections): **{total_errors}**"
              + (f" ({detail})." if detail else "."), "",
              "| process | RSS at 1 min, MiB | RSS at the end, MiB | max, MiB | "
              "stopped by SIGTERM in, s |", "|---|---|---|---|---|"]
    for name, values in sorted(series.items()):
        if not values:
            continue
        start = values[min(len(values) - 1, max(1, 60 // SAMPLE_SECONDS))]
        lines.append(f"| {name} | {start:.0f} | {values[-1]:.0f} | {max(values):.0f} | "
                     f"{stopped.get(name, float('nan')):.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float,
                        default=float(os.environ.get("SOAK_MINUTES", "30")))
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--report", type=Path, default=BASE / "test-artifacts" / "soak.md")
    args = parser.parse_args(argv)
    server = os.environ.get("SOAK_POSTGRES", "postgres://postgres@127.0.0.1:5432")
    redis_url = os.environ.get("SOAK_REDIS_URL", "redis://127.0.0.1:6379/5")
    root = Path(tempfile.mkdtemp(prefix="zspb-soak-"))
    stack = Stack.create(root, server=server, redis_url=redis_url, prefix="zspb_soak")
    # The app's per-licence limit (30 a minute) would refuse nearly every check of a client
    # that checks once a second; nginx's per-address limit stays as shipped.
    behaviour = yaml.safe_load((BASE / "config.yaml").read_text())
    behaviour["rate_limits"].update(license_subject="600/m", license_ip="600/m")
    (root / "config.yaml").write_text(yaml.safe_dump(behaviour))
    with (root / "env").open("a") as env:
        env.write(f"ZSPB_CONFIG={root / 'config.yaml'}\n")
    try:
        print(f"soak: installing the stack in {root}", flush=True)
        stack.install(web_instances=2, admin_password=PASSWORD)
        members = json.loads(stack.manage(
            "shell", "-c", f"CLIENTS = {args.clients}\nPASSWORD = {PASSWORD!r}\n{SEED}"
        ).strip().splitlines()[-1])
        started = stack.serve(web_instances=2, workers=2)
        until = time.monotonic() + args.minutes * 60
        tally = Tally()
        series: dict[str, list[float]] = defaultdict(list)
        threads = [threading.Thread(target=client_loop, args=(stack, i, member, until, tally))
                   for i, member in enumerate(members)]
        threads.append(threading.Thread(target=sample_memory, args=(stack, until, series)))
        print(f"soak: {args.clients} clients for {args.minutes:g} minutes", flush=True)
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for process in stack.processes:
            series[process.name].append(rss_mib(process))
        stopped = {process.name: stack.stop(process) for process in
                   [*started["web"], *started["worker"]]}
        commit = os.popen(f"git -C {BASE} rev-parse --short HEAD").read().strip()  # noqa: S605
        text = report(minutes=args.minutes, clients=args.clients, tally=tally, series=series,
                      stopped=stopped, commit=commit)
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(text)
        print(text)
        print(f"soak: report written to {args.report}")
        errors = sum(n for counts in tally.statuses.values()
                     for outcome, n in counts.items() if outcome.startswith("error"))
        return 1 if errors else 0
    finally:
        stack.destroy()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
