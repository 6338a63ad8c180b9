"""Row: key generation through the service against a raw `COPY` of the same rows.

The service runs in a `manage.py shell` child of the stack, the way the job worker runs a large
batch: a KeyGenerationJob as key_generation_start records it, then key_generation_run, chunk
by chunk, each chunk committed with the job's progress (the worker's time budget, which only
splits the run into queued continuations, is left out so that the timing is of one process).
The child times the run itself and samples its own resident memory from /proc/self/status
every 0.1 s: the peak (VmHWM), and the growth after the first tenth of the run, per 100,000
keys (flat: bounded by the chunk, not the batch).

The baseline, in this process on its own connection: one `COPY` of as many rows of the same
shape (the same ten columns, random 64-hex digests, 120-character Fernet-sized ciphertexts, the
same constants) into core_licensekey itself, so that it writes the same indexes and checks the
same foreign keys (made immediate: the transaction is rolled back, and deferred checks would
never run); rolling back skips only the commit's WAL flush.
The service runs next, on the table with the baseline's dead rows still in it (if anything, a
handicap for the service). Its keys are then deleted and the table vacuumed, so the rows after
this one find the table as it was.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import psycopg

from bench.measure import Context, Measurement

if TYPE_CHECKING:
    from tests.deploy.stack import Stack

FULL = 1_000_000
QUICK = 100_000
GOAL_RATIO = 0.6
GOAL_RATE = 20_000
# Flat: what the run keeps after its first tenth grows by less than this per 100,000 keys
# (before the rework, a batch's codes alone took about 9 MB per 100,000).
FLAT_MIB_PER_100K = 1.0
COPY_BLOCK = 20_000
# A Fernet token of a 28-character code: version, time, IV, two AES blocks, HMAC, base64.
CIPHERTEXT_LEN = 120

CHILD = """
import json, threading, time
from datetime import timedelta
from core.models import KeyGenerationJob, User
from core.services.keys import key_generation_run
from core.services.products import product_create

def rss_kib(field="VmRSS"):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field))

admin = User.objects.get(username="admin")
product = product_create(actor=admin, fields={"name": "Keygen bench", "slug": "keygen-bench"})
job = KeyGenerationJob.objects.create(product=product, duration=timedelta(days=30), count=N,
                                      note="bench", created_by=admin)
samples = []
stop = threading.Event()

def sample():
    while not stop.wait(0.1):
        samples.append((time.monotonic(), rss_kib()))

start_rss = rss_kib()
sampler = threading.Thread(target=sample, daemon=True)
started = time.monotonic()
sampler.start()
job = key_generation_run(job_id=job.pk)
seconds = time.monotonic() - started
stop.set()
sampler.join()
print(json.dumps({"seconds": seconds, "done": job.done, "status": job.status,
                  "batch": str(job.batch), "job_id": job.pk, "product_id": product.pk,
                  "admin_id": admin.pk, "start_rss_kib": start_rss,
                  "peak_rss_kib": rss_kib("VmHWM"),
                  "samples": [(t - started, r) for t, r in samples]}))
"""

# When the goal is missed: cProfile of a smaller job, the top functions by own time.
PROFILE = """
import cProfile, json, pstats
from datetime import timedelta
from core.models import KeyGenerationJob, LicenseKey, Product, User
from core.services.keys import key_generation_run
admin = User.objects.get(username="admin")
product = Product.objects.get(slug="keygen-bench")
job = KeyGenerationJob.objects.create(product=product, duration=timedelta(days=30), count=N,
                                      note="bench", created_by=admin)
profiler = cProfile.Profile()
profiler.runcall(key_generation_run, job_id=job.pk)
stats = pstats.Stats(profiler).stats
total = sum(own for _cc, _nc, own, _cum, _callers in stats.values())
top = sorted(stats.items(), key=lambda item: -item[1][2])[:12]
LicenseKey.objects.filter(batch=job.batch).delete()
job.delete()
print(json.dumps({"total": total, "top": [
    (f"{name} ({file.rsplit('/', 1)[-1]}:{line})", own, cum)
    for (file, line, name), (_cc, _nc, own, cum, _callers) in top]}))
"""

COLUMNS = ("code_digest, code, product_id, duration, status, batch, note, redeem_by, "
           "created_by_id, created_at")


def baseline_blocks(n: int, *, product_id: int, admin_id: int) -> list[bytes]:
    """`n` rows of the service's shape in COPY text format, in blocks (made before timing)."""
    now = datetime.now(timezone.utc).isoformat()
    suffix = f"\t{product_id}\t30 days\tfree\t{uuid.uuid4()}\tbench\t\\N\t{admin_id}\t{now}\n"
    blocks = []
    for start in range(0, n, COPY_BLOCK):
        size = min(COPY_BLOCK, n - start)
        digests = os.urandom(32 * size).hex()
        # Fernet tokens start with the version byte: "gAAAAA..." in base64.
        tokens = base64.urlsafe_b64encode(os.urandom(90 * size)).decode()
        blocks.append("".join(
            f"{digests[64 * i:64 * i + 64]}\tgAAAAA{tokens[114 * i:114 * i + 114]}{suffix}"
            for i in range(size)).encode())
    return blocks


def copy_seconds(database_url: str, blocks: list[bytes]) -> float:
    with psycopg.connect(database_url) as conn:
        # Django's foreign keys are checked at commit; this transaction is rolled back, so
        # they are checked row by row instead, as a committed COPY would have them checked.
        conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
        started = time.monotonic()
        with conn.cursor() as cursor, cursor.copy(
                f"COPY core_licensekey ({COLUMNS}) FROM STDIN") as copy:
            for block in blocks:
                copy.write(block)
        seconds = time.monotonic() - started
        conn.rollback()
    return seconds


def vacuum(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("VACUUM core_licensekey")


def rss_growth_mib_per_100k(samples: list[tuple[float, int]], seconds: float,
                            n: int) -> float:
    """Resident growth from the first tenth of the run to its end, per 100,000 keys (keys
    made at an even rate, so time stands for progress)."""
    later = [(t, kib) for t, kib in samples if t >= seconds / 10]
    if len(later) < 2:
        return 0.0
    head = later[: max(1, len(later) // 10)]
    tail = later[-max(1, len(later) // 10):]
    first = sum(k for _, k in head) / len(head)
    last = sum(k for _, k in tail) / len(tail)
    span = (sum(t for t, _ in tail) / len(tail)) - (sum(t for t, _ in head) / len(head))
    keys = n * span / seconds if seconds else 0
    return (last - first) / 1024 / keys * 100_000 if keys else 0.0


def measure(ctx: Context) -> list[Measurement]:
    n = QUICK if ctx.quick else FULL
    stack = ctx.stack
    ctx.say(f"keygen: baseline COPY of {n:,} rows")
    blocks = baseline_blocks(n, **_ids(stack.database_url))
    copy_s = copy_seconds(stack.database_url, blocks)
    del blocks
    ctx.say(f"keygen: {n:,} keys through the service")
    out = json.loads(stack.manage("shell", "-c", f"N = {n}\n{CHILD}").strip().splitlines()[-1])
    rate = out["done"] / out["seconds"]
    copy_rate = n / copy_s
    ratio = rate / copy_rate
    growth = rss_growth_mib_per_100k(out["samples"], out["seconds"], n)
    peak = out["peak_rss_kib"] / 1024
    flat = growth < FLAT_MIB_PER_100K
    met = (out["status"] == "done" and out["done"] == n and ratio >= GOAL_RATIO
           and rate >= GOAL_RATE and flat)
    profile = None
    if not met:
        ctx.say("keygen: goal missed, profiling a job of 50,000 keys")
        profile = _reason(rate=rate, ratio=ratio, flat=flat) + _profile(stack)
    cleanup(stack.database_url, out)
    details = [
        f"Scale: {n:,} keys ({'bench-quick' if ctx.quick else 'full'}), generated by "
        "key_generation_run (the job worker's code path, chunks committed with the job's "
        "progress) in a manage.py shell of the stack; one product, 30 days, a note",
        f"Service: {out['seconds']:.1f} s, {rate:,.0f} keys/s; job {out['status']}, "
        f"{out['done']:,} keys",
        f"Baseline: one COPY of {n:,} rows of the same columns and sizes into core_licensekey "
        f"(same indexes), {copy_s:.1f} s, {copy_rate:,.0f} rows/s",
        f"Resident memory of the generating process: {out['start_rss_kib'] / 1024:.0f} MiB "
        f"before, peak {peak:.0f} MiB; growth after the first tenth "
        f"{growth:+.2f} MiB per 100,000 keys ({'flat' if flat else 'growing'}; flat is "
        f"< {FLAT_MIB_PER_100K:g} MiB)",
    ]
    return [Measurement(
        title=f"key generation, {n:,} keys",
        figure=f"{rate:,.0f} keys/s",
        baseline=f"{copy_rate:,.0f} rows/s (COPY)",
        ratio=f"{ratio:.2f}x",
        goal="≥ 0.6x COPY and ≥ 20,000 keys/s, memory flat",
        met=met,
        details=details,
        profile=profile,
    )]


def _ids(database_url: str) -> dict[str, int]:
    """A product and the admin for the baseline's rows (bench.run seeded them)."""
    with psycopg.connect(database_url) as conn:
        product = conn.execute("SELECT min(id) FROM core_product").fetchone()
        admin = conn.execute("SELECT id FROM core_user WHERE username = 'admin'").fetchone()
    if product is None or product[0] is None or admin is None:
        raise RuntimeError("the stack has no product or no admin (bench.run seeds them)")
    return {"product_id": int(product[0]), "admin_id": int(admin[0])}


def cleanup(database_url: str, out: dict[str, Any]) -> None:
    """The service's keys, job and product gone (plain DELETEs: the ORM would collect a
    million keys first), then the table vacuumed of them and of the baseline's rows."""
    with psycopg.connect(database_url) as conn:
        conn.execute("DELETE FROM core_licensekey WHERE batch = %s", (out["batch"],))
        conn.execute("DELETE FROM core_keygenerationjob WHERE id = %s", (out["job_id"],))
        conn.execute("DELETE FROM core_product WHERE id = %s", (out["product_id"],))
    vacuum(database_url)


def _reason(*, rate: float, ratio: float, flat: bool) -> str:
    missed = []
    if ratio < GOAL_RATIO:
        missed.append(f"{ratio:.2f}x of COPY")
    if rate < GOAL_RATE:
        missed.append(f"{rate:,.0f} keys/s")
    if not flat:
        missed.append("memory grows with the batch")
    return (f"Missed: {', '.join(missed)}. Per key the service does in Python what COPY "
            "does not (a code from `secrets`, its HMAC-SHA256 digest, its Fernet token, a COPY "
            "line) while PostgreSQL writes the previous block; a chunk's commit, with its "
            "deferred foreign-key checks, waits for PostgreSQL alone. On a 2-core machine "
            "shared with other work both sides compete for the same CPUs.\n\n")


def _profile(stack: Stack) -> str:
    out = json.loads(stack.manage("shell", "-c", f"N = 50_000\n{PROFILE}")
                     .strip().splitlines()[-1])
    total = out["total"] or 1.0
    lines = [f"cProfile of key_generation_run, 50,000 keys: {total:.2f} s of Python time "
             "(waits on PostgreSQL included).", "",
             "| function | own time | with callees |", "|---|---|---|"]
    lines += [f"| `{name}` | {own / total:.0%} | {cum / total:.0%} |"
              for name, own, cum in out["top"]]
    return "\n".join(lines) + "\n"
