"""Row: subscription expiry, the way the scheduled jobs do it, against one raw `UPDATE`.

Nothing is written to a subscription when it ends (time passing is the state), so "expiry" is
what the minute schedules do about the subscriptions that ended since their last run: the
expiry half of `core.tasks.rolesync_drain` (`role_sync_expired`: a role-sync request for every
linked member whose role-bearing subscription ended) and `core.tasks.notify_expired_subscriptions`
(a "subscription_expired" WebSocket event to each member's open pages, through Redis). Expiry
writes no journal line and so no webhook message.

`manage.py generate_data` makes the subscriptions (due ones ended within the last hour, not
yet seen by the jobs; half the members have Discord linked; the generated products carry a
Discord role). One `manage.py shell` in the stack then runs, for each round, the baseline (one
raw `UPDATE core_subscription SET updated_at = now()` over the due rows, i.e. touching each
once) and the job, each after a reset (the jobs' marks set just before the due window, the
role-sync outbox emptied), so both do the same work every time; the median of the rounds is
reported. The worker's own schedules are held off meanwhile, so they do not take the window.
Discord is switched on in that shell only (no Discord call is made: the drain half is not run).
Afterwards the generated members are unlinked, so the later rows' reconcile does not see them.
"""

from __future__ import annotations

import json

from bench.measure import Context, Measurement

GOAL = 2.0
ROUNDS = 3

RUN = """
import json, statistics, time
from datetime import datetime, timedelta
from django.core.cache import cache
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone
from django_q.models import Schedule
from core.models import RoleSyncRequest
from core.services.realtime import EXPIRED_MARK_KEY
from core.services.rolesync.reconcile import EXPIRY_MARK_KEY, role_sync_expired
from core import tasks

since = datetime.fromisoformat(SINCE) - timedelta(seconds=1)
names = ["zspb:rolesync-drain", "zspb:member-expiry-push"]
held = {s.pk: s.next_run for s in Schedule.objects.filter(name__in=names)}
Schedule.objects.filter(pk__in=held).update(next_run=timezone.now() + timedelta(days=1))

def reset():
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM core_rolesyncrequest")
    cache.set(EXPIRY_MARK_KEY, since, timeout=None)
    cache.set(EXPIRED_MARK_KEY, since, timeout=None)

def baseline():
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE core_subscription SET updated_at = now() "
                       "WHERE expires_at > %s AND expires_at <= now()", [since])
        return cursor.rowcount

def job():
    # The expiry half of core.tasks.rolesync_drain, as a server with Discord configured runs it.
    with override_settings(DISCORD_ENABLED=True, DISCORD_BOT_TOKEN="bench", DISCORD_GUILD_ID=1):
        queued = role_sync_expired(queue_drain=False)
    pushed = tasks.notify_expired_subscriptions()
    return queued, pushed

rounds = []
try:
    for _ in range(ROUNDS):
        reset()
        started = time.perf_counter()
        updated = baseline()
        base = time.perf_counter() - started
        reset()
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            queued, pushed = job()
            took = time.perf_counter() - started
        rounds.append({"baseline": base, "job": took, "updated": updated, "queued": queued,
                       "pushed": pushed, "queries": len(queries),
                       "requests": RoleSyncRequest.objects.count()})
finally:
    for pk, next_run in held.items():
        Schedule.objects.filter(pk=pk).update(next_run=next_run)
    # Later rows must not see this data as work: marks past it, no links, no requests.
    cache.set(EXPIRY_MARK_KEY, timezone.now(), timeout=None)
    cache.set(EXPIRED_MARK_KEY, timezone.now(), timeout=None)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM core_rolesyncrequest")
        cursor.execute("UPDATE core_user SET discord_id = NULL, discord_username = '', "
                       "discord_linked_at = NULL WHERE username LIKE 'gen%%' "
                       "AND discord_id IS NOT NULL")
print(json.dumps(rounds))
"""


def measure(ctx: Context) -> list[Measurement]:
    stack = ctx.stack
    users, total, due = (10_000, 100_000, 10_000) if ctx.quick else (100_000, 1_000_000, 100_000)
    ctx.say(f"expiry: generating {total:,} subscriptions ({due:,} due) for {users:,} members")
    out = stack.manage("generate_data", "--users", str(users), "--subscriptions", str(total),
                       "--due", str(due), "--product", "expiry", "--json")
    generated = json.loads(out.strip().splitlines()[-1])
    since = generated["due_between"][0]
    ctx.say("expiry: timing the raw UPDATE and the expiry jobs")
    rounds = json.loads(stack.manage(
        "shell", "-c", f"SINCE = {since!r}\nROUNDS = {ROUNDS}\n{RUN}").strip().splitlines()[-1])
    jobs = sorted(r["job"] for r in rounds)
    bases = sorted(r["baseline"] for r in rounds)
    figure, baseline = jobs[len(jobs) // 2], bases[len(bases) // 2]
    ratio = figure / baseline if baseline else float("inf")
    last = rounds[-1]
    complete = all(r["updated"] == due and r["pushed"] == due for r in rounds)
    return [Measurement(
        title="subscription expiry (role-sync requests and WebSocket events of the due rows)",
        figure=f"{figure:.2f} s",
        baseline=f"{baseline:.2f} s (raw UPDATE of the due rows)",
        ratio=f"{ratio:.2f}x",
        goal=f"≤ {GOAL:g}x the raw UPDATE's time",
        met=ratio <= GOAL and complete,
        details=[
            f"scale: {total:,} subscriptions of which {due:,} due, {users:,} members (half "
            f"linked to Discord), {len(generated['products'])} products"
            f"{' (bench-quick)' if ctx.quick else ''}; generated in "
            f"{sum(generated['seconds'].values()):.1f} s",
            "per round (job / UPDATE, s): " + ", ".join(
                f"{r['job']:.2f} / {r['baseline']:.2f}" for r in rounds),
            f"work per run: UPDATE {last['updated']:,} rows; job: {last['queued']:,} members "
            f"queued for role sync ({last['requests']:,} outbox rows), {last['pushed']:,} "
            f"events pushed, {last['queries']} queries",
            "the job: role_sync_expired (the expiry half of core.tasks.rolesync_drain, Discord "
            "switched on in the measuring shell) then core.tasks.notify_expired_subscriptions; "
            "median of the rounds, each run after a reset of the jobs' marks and the outbox",
        ],
    )]
