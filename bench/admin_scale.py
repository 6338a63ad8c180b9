"""Rows: the staff admin's changelists at scale (keys, members, the three journals).

`manage.py generate_data` fills the stack's database (1,000,000 keys, 100,000 members,
1,000,000 journal rows; bench-quick a tenth). Then one `manage.py shell` in the stack requests
each changelist through django.test.Client as the bootstrap administrator (force_login and the
second factor marked as passed, as tests/staff/conftest.py does): the first page, a search, a
filter and a far page, three times each. The figure is the median server time
(time.perf_counter around client.get: the view, its queries and the template, in the stack's
process with its settings, DEBUG off) and the number of queries (CaptureQueriesContext).
"""

from __future__ import annotations

import json

from bench.measure import Context, Measurement

GOAL_MS = 300.0
# The most queries a changelist may take (session, user, 2FA device, filters, count, page...).
QUERY_CEILING = 15
REPEAT = 3
# Past the first few hundred pages of each changelist (50 rows a page); bench-quick's error
# journal has 200 pages.
FAR_PAGE, FAR_PAGE_QUICK = 500, 100

RUN = """
import json, statistics, time
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice
from core.models import Role, User

admin = User.objects.get(username="admin")
device = (TOTPDevice.objects.filter(user=admin, confirmed=True).first()
          or TOTPDevice.objects.create(user=admin, name="bench", confirmed=True))
client = Client(HTTP_HOST="localhost", HTTP_X_FORWARDED_FOR="127.0.0.1")
client.force_login(admin, backend="django.contrib.auth.backends.ModelBackend")
session = client.session
session[DEVICE_ID_SESSION_KEY] = device.persistent_id
session.save()

member = User.objects.filter(username__startswith="gen").order_by("-pk").first()
role = Role.objects.get(key="user")
pages = {
    "keys": ("/admin/core/licensekey/", [
        ("search", "q=ZSPB-ABCDE-FGHJK-MNPQR-STVWX"),
        ("filter", "status__exact=redeemed"),
    ]),
    "members": ("/admin/core/user/", [
        ("search", f"q={member.username}"),
        ("filter", f"role__id__exact={role.pk}"),
    ]),
}
# The journals have no search box: the actor filter (a username) stands in for a search.
# Each filter's action is one the generator writes to that journal (tens of thousands).
for name, path, action in (("journal: user actions", "useractionentry", "user.login"),
                           ("journal: moderation", "moderationentry", "user.ban"),
                           ("journal: errors", "systemerrorentry", "task.failed")):
    pages[name] = (f"/admin/core/{path}/", [
        ("actor", f"actor={member.username}"),
        ("filter", f"action={action}"),
    ])
out = {}
for name, (base, extra) in pages.items():
    urls = [("first page", base)] + [(kind, f"{base}?{query}") for kind, query in extra]
    urls.append((f"page {FAR_PAGE}", f"{base}?p={FAR_PAGE}"))
    for kind, url in urls:
        times, queries, status = [], 0, 0
        for _ in range(REPEAT):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get(url)
                times.append(time.perf_counter() - started)
            queries, status = len(captured.captured_queries), response.status_code
            slowest = max(captured.captured_queries, key=lambda q: float(q["time"]))
        out.setdefault(name, []).append({
            "kind": kind, "url": url, "ms": statistics.median(times) * 1000,
            "queries": queries, "status": status,
            "slowest_ms": float(slowest["time"]) * 1000, "slowest": slowest["sql"][:300]})
print(json.dumps(out))
"""


def measure(ctx: Context) -> list[Measurement]:
    stack = ctx.stack
    users, keys, journal = (10_000, 100_000, 100_000) if ctx.quick else (
        100_000, 1_000_000, 1_000_000)
    ctx.say(f"admin_scale: generating {keys:,} keys, {users:,} members, {journal:,} journal rows")
    # No Discord links: the later rows' reconcile of every linked member must not see them.
    out = stack.manage("generate_data", "--users", str(users), "--subscriptions", str(users),
                       "--keys", str(keys), "--journal", str(journal), "--linked", "0",
                       "--product", "admin-scale", "--json")
    generated = json.loads(out.strip().splitlines()[-1])
    far = FAR_PAGE_QUICK if ctx.quick else FAR_PAGE
    ctx.say("admin_scale: requesting the changelists")
    results = json.loads(stack.manage(
        "shell", "-c", f"REPEAT = {REPEAT}\nFAR_PAGE = {far}\n{RUN}").strip().splitlines()[-1])
    scale = (f"scale: {keys:,} keys, {users:,} members, {journal:,} journal rows generated "
             f"(60 % user actions, 30 % moderation, 10 % errors) in "
             f"{sum(generated['seconds'].values()):.1f} s, added to the earlier rows' data"
             f"{' (bench-quick)' if ctx.quick else ''}")
    rows = []
    for name, urls in results.items():
        worst = max(u["ms"] for u in urls)
        most = max(u["queries"] for u in urls)
        ok = all(u["status"] == 200 for u in urls)
        rows.append(Measurement(
            title=f"admin changelist at scale: {name}",
            figure=f"{worst:.0f} ms, ≤ {most} queries (slowest of {len(urls)} URLs)",
            baseline="—",
            ratio="—",
            goal=f"≤ {GOAL_MS:g} ms server time, bounded queries (≤ {QUERY_CEILING})",
            met=ok and worst <= GOAL_MS and most <= QUERY_CEILING,
            details=[scale, *[
                f"{u['kind']} `{u['url']}`: {u['ms']:.0f} ms, {u['queries']} queries, "
                f"HTTP {u['status']}; slowest query {u['slowest_ms']:.0f} ms" for u in urls],
                f"median of {REPEAT} requests each, timed in the stack's process "
                "(django.test.Client, administrator with the second factor passed)"],
        ))
    return rows
