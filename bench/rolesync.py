"""Row: the role-sync drain against the Discord stand-in limited to 50 requests per second.

The stand-in (tests/discord_standin.py, a real HTTP server on loopback, in this process) gets
Discord's global limit of 50 requests a second and buckets as roomy, so the global limit is the
one that binds. The stack's worker is restarted with the stand-in as its Discord (bot token,
guild, API base in its environment, as a server's .env would give them). Linked members who
are in the guild without the site role's Discord role are created, then the role's Discord
role is set through the staff service (role_update), which queues their syncs the production
way (above MEMBERS_SYNC_MAX, one reconcile of every linked member); the worker drains them.

Figures come from the stand-in's own log: requests per second over the drain without its
first and last second, the 429 answers (count and longest run), the busiest sliding second,
and the time from the first request to the last, with every member converged.
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg

from bench.measure import Context, Measurement
from tests.deploy.stack import WORKER_STOP_TIMEOUT, Process, Stack, read_unit
from tests.discord_standin import DiscordStandin, Served

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
LIMIT = 50  # Discord's global limit per bot, the stand-in's here
GOAL = 45.0
OUTBOX_GRACE = 15.0
ROLE = 444_000_000_000_000_001
DISCORD_BASE = 555_000_000_000_000_000
TOKEN = "bench-standin-bot-token"  # the stand-in's, never a real one

# Linked members in the guild who lack the role, and the role given to them through the staff
# service (actor: the bootstrap admin, above every role).
SEED = """
from django.contrib.auth.hashers import make_password
from core.models import Role, User
role = Role.objects.get(key="user")
unusable = make_password(None)
User.objects.bulk_create([User(username=f"rolesync_{i}", password=unusable, role=role,
                               discord_id=BASE + i) for i in range(COUNT)], batch_size=1000)
"""
EDIT = """
from core.models import Role, User
from core.services.roles import role_update
admin = User.objects.get(username="admin")
role_update(actor=admin, role=Role.objects.get(key="user"), changes={"discord_role_id": ROLE})
"""


def _worker(stack: Stack) -> Process:
    return next(p for p in stack.processes if p.name.startswith("worker")
                and p.popen.poll() is None)


def _restart_worker(stack: Stack, name: str, extra_env: dict[str, str]) -> Process:
    stack.stop(_worker(stack))
    unit = read_unit(stack.root / "units1" / "zspb-worker.service")
    return stack.start(name, unit.argv, {**unit.env, **extra_env}, unit.cwd,
                       WORKER_STOP_TIMEOUT)


def longest_429_run(log: list[Served]) -> int:
    best = run = 0
    for served in log:
        run = run + 1 if served.status == 429 else 0
        best = max(best, run)
    return best


def sustained_rate(log: list[Served]) -> tuple[float, float]:
    """(requests per second without the first and last second, seconds first to last)."""
    times = sorted(s.received for s in log)
    if len(times) < 2:
        return 0.0, 0.0
    span = times[-1] - times[0]
    if span <= 2.5:
        return len(times) / span if span else 0.0, span
    inner = [t for t in times if times[0] + 1 <= t < times[-1] - 1]
    return len(inner) / (span - 2), span


def measure(ctx: Context) -> list[Measurement]:
    stack = ctx.stack
    members = 150 if ctx.quick else 1_000
    standin = DiscordStandin(token=TOKEN, global_limit=LIMIT)
    # Buckets as roomy as the global limit: the global limit is the one that binds.
    standin.limits["member.get"] = (LIMIT, 1.0)
    standin.limits["member.roles"] = (LIMIT, 1.0)
    for i in range(members):
        standin.add_member(DISCORD_BASE + i)
    standin.start()
    discord_env = {"DISCORD_BOT_TOKEN": TOKEN, "DISCORD_GUILD_ID": str(standin.guild_id),
                   "DISCORD_API_BASE": standin.api_base}
    try:
        ctx.say(f"rolesync: {members} linked members, worker pointed at the stand-in")
        stack.manage("shell", "-c", f"BASE = {DISCORD_BASE}\nCOUNT = {members}\n{SEED}")
        worker = _restart_worker(stack, "worker-rolesync", discord_env)
        edited = time.monotonic()
        stack.manage("shell", "-c", f"ROLE = {ROLE}\n{EDIT}", extra_env=discord_env)
        deadline = edited + (60 if ctx.quick else 150)
        while time.monotonic() < deadline:
            if all(ROLE in (standin.roles_of(DISCORD_BASE + i) or ())
                   for i in range(members)):
                break
            time.sleep(0.2)
        converged = time.monotonic()
        done = all(ROLE in (standin.roles_of(DISCORD_BASE + i) or ()) for i in range(members))
        # The drain deletes a batch's converged rows when the batch ends, which can be a
        # moment after the stand-in saw its last request: give it up to OUTBOX_GRACE seconds.
        settle = time.monotonic() + OUTBOX_GRACE
        while True:
            with psycopg.connect(stack.database_url) as conn:
                row = conn.execute("SELECT count(*) FROM core_rolesyncrequest").fetchone()
            pending = int(row[0]) if row else -1
            if pending == 0 or not done or time.monotonic() >= settle:
                break
            time.sleep(0.2)
        log = standin.served()
        stack.stop(worker)
    finally:
        standin.stop()
        if not any(p.name.startswith("worker") and p.popen.poll() is None
                   for p in stack.processes):
            stack.start_unit("worker1", stack.root / "units1" / "zspb-worker.service",
                             WORKER_STOP_TIMEOUT)
    rate, span = sustained_rate(log)
    limited = [s for s in log if s.status == 429]
    run = longest_429_run(log)
    busiest = standin.max_in_window(1.0)
    statuses: dict[str, int] = {}
    for s in log:
        statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
    met = done and pending == 0 and rate >= GOAL and run <= 1
    _save_log(ARTIFACTS, log)
    return [Measurement(
        title="role-sync drain against the Discord stand-in (50 req/s)",
        figure=f"{rate:.1f} req/s sustained, {len(limited)} x 429 (longest run {run})",
        baseline=f"{LIMIT} req/s (the stand-in's global limit)",
        ratio=f"{rate / LIMIT:.2f}x",
        goal=f"≥ {GOAL:g} req/s sustained, no runs of 429",
        met=met,
        details=[
            f"scale: {members} linked members lacking the site role's Discord role"
            f"{' (bench-quick)' if ctx.quick else ''}; queued by role_update (one reconcile of "
            "every linked member), drained by the stack's worker (django-q2)",
            f"requests: {len(log)} ({', '.join(f'HTTP {k} x{v}' for k, v in statuses.items())}),"
            f" {span:.1f} s from the first to the last; busiest sliding second {busiest}",
            f"converged: {'every member' if done else 'NOT every member'}, {pending} request(s)"
            f" left in the outbox; {converged - edited:.1f} s from the role edit "
            "(manage.py start-up included)",
            "rate: requests received by the stand-in without the drain's first and last second",
        ],
    )]


def _save_log(directory: Path, log: list[Served]) -> None:
    """The stand-in's log, for a look at the pacing (seconds, method, route, status)."""
    if not log:
        return
    first = min(s.received for s in log)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "rolesync-standin.tsv").write_text("".join(
        f"{s.received - first:.4f}\t{s.method}\t{s.group}\t{s.status}\n" for s in log))
