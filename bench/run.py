"""`make bench` / `make bench-quick` (issue 12): the hot paths against the production stack on
loopback, each beside a baseline measured in the same run, written to BENCHMARKS.md.

The stack is the smoke test's (tests/deploy/stack.py): the rendered systemd units and nginx
site, two gunicorn/uvicorn web instances (WEB_WORKERS each, 1 by default), one job worker,
PostgreSQL and Redis, DEBUG off. wrk drives each path with 32 connections; the baseline is
/api/bench/baseline (api/bench.py: a bare Ninja endpoint doing one primary-key query, mounted
only with ZSPB_BENCH_BASELINE=1), served by the same processes behind the same middleware.
Rounds interleave the baseline and every path, so a machine that gets busier mid-run slows
both; each figure is the median over the rounds and the ratio is figure / baseline.

Throttles run but never refuse: the app's rates are raised in the stack's own config.yaml and
nginx's limit_req zones in the stack's own copy of the rendered site (see `raise_nginx_limits`).

When a goal is missed, py-spy samples one web worker during a further run of that path and the
top costs go into the report. bench/history.md (hand-written: fixes with their before and
after) is appended to the report as it is.

    python -m bench.run [--quick] [--report FILE] [--web-workers N] [--no-profile]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml

BASE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE))

from bench.measure import Context, Measurement, measure_all, report_rows  # noqa: E402
from tests.deploy.stack import Stack  # noqa: E402

HERE = Path(__file__).resolve().parent
ARTIFACTS = BASE / "test-artifacts"
PASSWORD = "bench horse battery staple 7"
CONNECTIONS = 32
WRK_THREADS = 2
MEMBERS = 32
# Above any rate a run reaches, so the throttles count every request and refuse none.
UNLIMITED = "10000000/m"
# Keys redeemed per second that the pool is sized for (a pool run dry answers errors).
REDEEM_CEILING = 400

# Run inside the stack (manage.py shell): a product, MEMBERS members with a redeemed key and a
# bound machine (licence checks, member pages), MEMBERS more who redeem, their sessions, and
# the pool of fresh keys. Writes the data files wrk's scripts read. The members have no password
# (an Argon2 hash each would take most of bench-quick): their sessions are made directly.
SEED = """
import json, secrets, string
from datetime import timedelta
from pathlib import Path
from django.conf import settings
from django.test import Client
from core.models import Role, Subscription, User
from core.services.keys import key_redeem, keys_generate
from core.services.licensing import hwid_digest
from core.services.products import product_create
out = Path(OUT)
admin = User.objects.get(username="admin")
product = product_create(actor=admin, fields={"name": "Bench", "slug": "bench"})
role = Role.objects.get(key="user")
month = timedelta(days=30)

def session_of(user):
    client = Client()
    client.force_login(user)
    csrf = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
    return client.cookies[settings.SESSION_COOKIE_NAME].value + "\\t" + csrf

licence, sessions, redeemers = [], [], []
for i, code in enumerate(keys_generate(actor=admin, product=product, duration=month,
                                       count=MEMBERS).codes):
    user = User.objects.create_user(username=f"bench_{i}", password=None, role=role)
    key_redeem(user=user, code=code)
    hwid = f"bench-machine-{i}"
    Subscription.objects.filter(user=user, product=product).update(
        hwid_digest=hwid_digest(hwid))
    licence.append(f"{code}\\tbench\\t{hwid}")
    sessions.append(session_of(user))
for i in range(MEMBERS):
    user = User.objects.create_user(username=f"bench_r{i}", password=None, role=role)
    redeemers.append(session_of(user))
pool = keys_generate(actor=admin, product=product, duration=month, count=POOL).codes
(out / "licence.tsv").write_text("\\n".join(licence) + "\\n")
(out / "sessions.tsv").write_text("\\n".join(sessions) + "\\n")
(out / "redeem_sessions.tsv").write_text("\\n".join(redeemers) + "\\n")
(out / "redeem_keys.tsv").write_text("\\n".join(pool) + "\\n")
print(json.dumps({"product_id": product.pk}))
"""


@dataclass(frozen=True)
class Target:
    """One benchmarked path: its wrk script and arguments, and its goal."""

    name: str
    title: str
    script: str
    args: tuple[str, ...]
    goal_ratio: float
    goal_p99_ms: float | None = None


@dataclass(frozen=True)
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    error_kinds: str

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def raise_nginx_limits(site: Path) -> None:
    """nginx's per-address limit_req would refuse a benchmark's one client address after a
    burst of 30. The bench's copy of the rendered site gets every zone's rate and burst raised
    (the production templates are untouched): the limit_req lookups still run, none refuses
    (with the burst as shipped, 32 requests arriving within microseconds could be)."""
    text, rates = re.subn(r"rate=\d+r/[sm];", "rate=100000r/s;", site.read_text())
    text, bursts = re.subn(r"burst=\d+", "burst=100000", text)
    assert rates >= 2 and bursts >= 2, f"no limit_req zones found in {site}"
    site.write_text(text)


def behaviour_config(root: Path) -> Path:
    behaviour = yaml.safe_load((BASE / "config.yaml").read_text())
    behaviour["rate_limits"] = dict.fromkeys(behaviour["rate_limits"], UNLIMITED)
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(behaviour))
    return path


def wrk_script(root: Path, name: str) -> Path:
    """wrk takes one script: the shared part (bench/lua/common.lua) in front of the path's."""
    path = root / f"{name}.lua"
    path.write_text((HERE / "lua" / "common.lua").read_text() + "\n"
                    + (HERE / "lua" / f"{name}.lua").read_text())
    return path


class KeyPool:
    """Hands each redeem run its own slice of the pre-generated keys (wrk starts afresh)."""

    def __init__(self, seconds: float) -> None:
        self.per_run = int(REDEEM_CEILING * seconds)
        self.used = 0

    def size(self, runs: int) -> int:
        return self.per_run * runs

    def next_offset(self) -> str:
        offset, self.used = self.used, self.used + self.per_run
        return str(offset)


def run_wrk(stack: Stack, path: Target, seconds: float, pool: KeyPool | None = None) -> Result:
    script = wrk_script(stack.root, path.script)
    extra = [pool.next_offset()] if pool is not None and path.script == "redeem" else []
    command = ["wrk", f"-t{WRK_THREADS}", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--timeout",
               "10s", "-s", str(script), stack.url, "--", *path.args, *extra]
    done = subprocess.run(command, capture_output=True, text=True, check=False,
                          timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH-RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result for {path.name}:\n{done.stdout}{done.stderr}")
    raw = json.loads(line.removeprefix("BENCH-RESULT "))
    kinds = {k: raw[k] for k in ("connect", "read", "write", "timeout") if raw[k]}
    statuses: Counter[str] = Counter()
    for item in raw["statuses"].split():
        code, _, count = item.partition("=")
        statuses[f"HTTP {code}"] += int(count)
    kinds.update(statuses)
    return Result(requests=raw["requests"], seconds=raw["duration_us"] / 1e6,
                  p50_ms=raw["p50_us"] / 1000, p99_ms=raw["p99_us"] / 1000,
                  errors=sum(kinds.values()),
                  error_kinds=", ".join(f"{k} x{v}" for k, v in kinds.items()))


def web_worker_pid(stack: Stack) -> int:
    """A gunicorn worker of the first web instance (not its master)."""
    web = next(p for p in stack.processes if p.name == "web1")
    workers = [pid for pid in web.group() if pid != web.pgid]
    if not workers:
        raise RuntimeError("web1 has no worker process")
    return workers[0]


def py_spy() -> str | None:
    for candidate in (BASE / ".venv-bench" / "bin" / "py-spy", shutil.which("py-spy")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    return None


def profile(stack: Stack, path: Target, seconds: float, pool: KeyPool) -> str:
    """py-spy's samples of one web worker while `path` runs under load: the top costs."""
    spy = py_spy()
    if spy is None:
        return "py-spy not found (make bench installs it into .venv-bench); no profile.\n"
    out = stack.root / f"profile-{path.name}.txt"
    recorder = subprocess.Popen(
        [spy, "record", "--pid", str(web_worker_pid(stack)), "--duration", f"{seconds:.0f}",
         "--rate", "250", "--format", "raw", "--full-filenames", "--nonblocking",
         "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run_wrk(stack, path, seconds + 2, pool)
    _, err = recorder.communicate(timeout=seconds + 60)
    if not out.exists():
        return f"py-spy recorded nothing: {err.strip()[-500:]}\n"
    # The raw samples, for a flame graph (e.g. inferno-flamegraph < file).
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(out, ARTIFACTS / out.name)
    return summarise_profile(out.read_text())


def _frame(frame: str) -> tuple[str, str]:
    """'function (path/file.py:12)' -> ('function', 'path/file.py')."""
    match = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not match:
        return frame, ""
    return match.group(1), match.group(2)


def _short(file: str) -> str:
    for marker in ("site-packages/", str(BASE) + "/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file.rsplit("/lib/", 1)[-1]


# Leaf frames of threads with nothing to do (--nonblocking cannot tell idle threads apart):
# the thread pool waiting for work, the event loop waiting for sockets.
IDLE_LEAVES = {("concurrent/futures/thread.py", "_worker"), ("uvicorn/_compat.py", "asyncio_run"),
               ("asyncio/base_events.py", "_run_once"), ("selectors.py", "select"),
               ("threading.py", "wait"), ("threading.py", "_wait_for_tstate_lock"),
               ("gunicorn/arbiter.py", "sleep")}


def summarise_profile(raw: str, top: int = 15) -> str:
    """Inclusive share of the project's functions and self share of every function, over the
    samples of threads at work (requests being served, waits on PostgreSQL and Redis
    included: they are the request's time too)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack_text.split(";")]
        leaf_function, leaf_file = frames[-1]
        if any(leaf_file.endswith(file) and leaf_function == function
               for file, function in IDLE_LEAVES):
            continue
        total += count
        seen = set()
        for function, file in frames:
            if str(BASE) in file and ".venv" not in file:
                name = f"{_short(file)}:{function}"
                if name not in seen:
                    seen.add(name)
                    inclusive[name] += count
        function, file = frames[-1]
        own[f"{_short(file)}:{function}"] += count
    if not total:
        return "py-spy recorded no busy samples.\n"
    lines = [f"{total} samples of threads at work (idle waits left out).", "",
             "| project function (inclusive) | share |", "|---|---|"]
    lines += [f"| `{n}` | {c / total:.0%} |" for n, c in inclusive.most_common(top)]
    lines += ["", "| function (self time) | share |", "|---|---|"]
    lines += [f"| `{n}` | {c / total:.0%} |" for n, c in own.most_common(top)]
    return "\n".join(lines) + "\n"


def machine() -> str:
    model = ""
    memory_kib = 0
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
        model = next((line.split(":", 1)[1].strip() for line in handle
                      if line.startswith("model name")), "unknown CPU")
    with open("/proc/meminfo", encoding="ascii") as handle:
        memory_kib = next(int(line.split()[1]) for line in handle
                          if line.startswith("MemTotal:"))
    load = os.getloadavg()
    return (f"{os.cpu_count()} cores ({model}), {memory_kib / 1024 / 1024:.1f} GiB memory; "
            f"load average at the start {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
            "(1 / 5 / 15 min)")


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(BASE), *args], capture_output=True, text=True,
                              check=False).stdout.strip()
    head = git("rev-parse", "--short", "HEAD")
    return f"{head} (with uncommitted changes)" if git("status", "--porcelain") else head


@dataclass
class Row:
    path: Target
    results: list[Result]
    baselines: list[Result]

    def median(self, attr: str, of: str = "results") -> float:
        return statistics.median(getattr(r, attr) for r in getattr(self, of))

    @property
    def ratio(self) -> float:
        # Per round, against that round's baseline (the load on a shared machine
        # changes between rounds more than within one); the median of those.
        return statistics.median(r.rps / b.rps if b.rps else 0.0
                                 for r, b in zip(self.results, self.baselines, strict=True))

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.results)

    @property
    def met(self) -> bool:
        p99_ok = self.path.goal_p99_ms is None or self.median("p99_ms") <= self.path.goal_p99_ms
        return self.ratio >= self.path.goal_ratio and p99_ok and self.errors == 0

    def goal(self) -> str:
        parts = [f"≥ {self.path.goal_ratio:g}x"]
        if self.path.goal_p99_ms is not None:
            parts.append(f"p99 ≤ {self.path.goal_p99_ms:g} ms")
        return ", ".join([*parts, "no errors"])


def report(*, rows: list[Row], profiles: dict[str, str], settings: dict[str, str],
           measured: list[Measurement]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`make bench-quick` for a short run); do not edit by hand: "
        "bench/history.md holds the notes kept between runs. Every figure is beside its baseline "
        "measured in the same run on the same server: the machine is shared, so absolute "
        "figures vary from run to run and the ratio is what the goals are about.",
        "",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Commit: {commit()}",
        f"- Machine: {machine()}",
    ]
    lines += [f"- {key}: {value}" for key, value in settings.items()]
    lines += [
        "",
        "| path | req/s | baseline req/s | ratio | p50 ms | p99 ms | baseline p99 ms | errors "
        "| goal | met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        kinds = "; ".join(r.error_kinds for r in row.results if r.error_kinds)
        lines.append(
            f"| {row.path.title} | {row.median('rps'):.0f} | {row.median('rps', 'baselines'):.0f}"
            f" | {row.ratio:.2f}x | {row.median('p50_ms'):.1f} | {row.median('p99_ms'):.1f} | "
            f"{row.median('p99_ms', 'baselines'):.1f} | {row.errors}"
            f"{f' ({kinds})' if kinds else ''} | {row.goal()} | "
            f"{'met' if row.met else '**missed**'} |")
    lines += ["", "Per round (req/s, path / baseline):", ""]
    for row in rows:
        rounds = ", ".join(f"{r.rps:.0f} / {b.rps:.0f}"
                           for r, b in zip(row.results, row.baselines, strict=True))
        lines.append(f"- {row.path.title}: {rounds}")
    for name, text in profiles.items():
        title = next(row.path.title for row in rows if row.path.name == name)
        lines += ["", f"## Profile: {title} (goal missed)", "",
                  "py-spy sampling one web worker during a further run of this path.", "",
                  text.rstrip()]
    lines += report_rows(measured)
    history = HERE / "history.md"
    if history.exists():
        lines += ["", history.read_text().rstrip()]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short round (< 2 minutes)")
    parser.add_argument("--report", type=Path, default=BASE / "BENCHMARKS.md")
    parser.add_argument("--web-workers", type=int,
                        default=int(os.environ.get("BENCH_WEB_WORKERS", "1")),
                        help="gunicorn workers per web instance (two instances)")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--no-http", action="store_true",
                        help="skip the wrk rows (to work on the other rows)")
    parser.add_argument("--only", default="",
                        help="comma-separated row modules of bench/measure.py to run "
                             "(keygen,expiry,...); all by default")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench: wrk not found (Debian/Ubuntu: apt-get install wrk)", file=sys.stderr)
        return 2
    # Full: three rounds of 10 s per path (about 2.5 minutes of wrk), leaving the rest of the
    # ten minutes to the jobs and scale rows; quick: one round of 4 s.
    rounds, seconds, profile_seconds = (1, 4.0, 5.0) if args.quick else (3, 10.0, 8.0)
    started = time.monotonic()

    def say(text: str) -> None:
        print(f"bench [{time.monotonic() - started:3.0f} s]: {text}", flush=True)

    server = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/4")
    root = Path(tempfile.mkdtemp(prefix="zspb-bench-"))
    stack = Stack.create(root, server=server, redis_url=redis_url, prefix="zspb_bench")
    with (root / "env").open("a") as env:
        env.write(f"ZSPB_CONFIG={behaviour_config(root)}\nZSPB_BENCH_BASELINE=1\n")
    try:
        say(f"installing the stack in {root}")
        stack.install(web_instances=2, admin_password=PASSWORD, web_workers=args.web_workers)
        raise_nginx_limits(root / "units1" / "zspb.nginx.conf")
        # A slice for each round and for the profile's run, each at least as long as a round.
        keys = KeyPool(max(seconds, profile_seconds + 2))
        pool = keys.size(rounds + 1)
        say("seeding members, sessions and keys")
        seeded = json.loads(stack.manage(
            "shell", "-c", f"OUT = {str(root)!r}\nMEMBERS = {MEMBERS}\nPOOL = {pool}\n{SEED}"
        ).strip().splitlines()[-1])
        say("starting nginx, the web instances and the worker")
        stack.serve(web_instances=2, workers=1)
        data = {name: str(root / f"{name}.tsv") for name in
                ("licence", "sessions", "redeem_sessions", "redeem_keys")}
        baseline = Target("baseline", "baseline", "get", ("-", f"/api/bench/baseline/"
                                                              f"{seeded['product_id']}"), 0)
        paths = [
            Target("licence", "licence check (valid key, bound machine, fresh nonce)", "licence",
                  (data["licence"],), 0.8, 50.0),
            Target("redeem", "redeem over HTTP (fresh key each request)", "redeem",
                  (data["redeem_keys"], data["redeem_sessions"], str(WRK_THREADS)), 0.5),
            Target("dashboard", "member dashboard page (GET /)", "get",
                  (data["sessions"], "/"), 0.5),
            Target("dashboard_api", "dashboard's API calls (/api/auth/me, /api/subscriptions)",
                  "get", (data["sessions"], "/api/auth/me,/api/subscriptions"), 0.5),
        ]
        rows = [] if args.no_http else [Row(path, [], []) for path in paths]
        if rows:
            say("warming up")
            run_wrk(stack, baseline, 3)
        for number in range(1, rounds + 1 if rows else 1):
            # One baseline run opens each round and every path is compared with it: the
            # paths' runs follow it within a minute, on a machine in the same state.
            base = run_wrk(stack, baseline, seconds)
            for row in rows:
                row.baselines.append(base)
                row.results.append(run_wrk(stack, row.path, seconds, keys))
                say(f"round {number}, {row.path.name}: {row.results[-1].rps:.0f} req/s"
                    f" against {row.baselines[-1].rps:.0f}")
        profiles: dict[str, str] = {}
        if not args.no_profile:
            # bench-quick profiles the hot path only, to stay within its two minutes.
            for row in rows[:1] if args.quick else rows:
                if not row.met:
                    say(f"profiling {row.path.name}")
                    profiles[row.path.name] = profile(stack, row.path, profile_seconds, keys)
        settings = {
            "Configuration": (
                f"nginx → 2 web instances (gunicorn + uvicorn workers, WEB_WORKERS="
                f"{args.web_workers} each, the rendered zspb-web.service), 1 job worker, "
                "PostgreSQL and Redis on 127.0.0.1, DEBUG off"),
            "Load": (f"wrk, {WRK_THREADS} threads, {CONNECTIONS} connections, {rounds} "
                     f"round(s); each round is a baseline run then every path, {seconds:g} s "
                     "each; figures are medians over the rounds, the ratio is the median of "
                     "each round's ratio to that round's baseline"),
            "Throttles": (f"every app rate limit raised to {UNLIMITED} (the throttles still "
                          "count in Redis, none refuses); nginx's limit_req zones raised to "
                          "100000 r/s, burst 100000, in the bench's copy of the rendered site "
                          "(the lookups "
                          "still run; wrk connects from one address, which the shipped rates "
                          "would refuse after a burst)"),
            "Data": (f"{MEMBERS} members with a redeemed key and a bound machine (licence "
                     f"checks, pages), {MEMBERS} members redeeming from a pool of {pool} "
                     "fresh keys"),
        }
        context = Context(stack=stack, quick=args.quick, say=say, root=root)
        only = {name.strip() for name in args.only.split(",") if name.strip()} or None
        measured = measure_all(context, only)
        text = report(rows=rows, profiles=profiles, settings=settings, measured=measured)
        args.report.write_text(text)
        print(text)
        say(f"report written to {args.report}")
        return 0
    finally:
        stack.destroy()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
