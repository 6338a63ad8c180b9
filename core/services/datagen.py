"""Large synthetic datasets for benchmarks and scale checks, written with PostgreSQL COPY.

Members, subscriptions (some just ended: due for the expiry jobs), licence keys (some redeemed
by the members who hold the matching subscription) and journal rows across the three journals.
Rows are generated in Python as COPY text and streamed through psycopg 3's `cursor.copy` on
Django's own connection: no model instances, no per-row INSERT.

Encrypted columns get one ciphertext per column, computed once with the field's own encryption
(Fernet per row would cost more than the whole COPY). The digest columns are real: each key's
`code_digest` is the HMAC of its own random code, so the unique index and lookups behave as in
production. The codes themselves are not kept: generated keys cannot be redeemed by code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Field, Model
from django.utils import timezone
from django.utils.translation import gettext as _

from core.crypto import ALPHABET, digest
from core.errors import InvalidInput
from core.models import LicenseKey, LogEntry, Product, Role, Subscription, User
from core.services.keys import KEY_GROUPS, key_code_digest

# Lines handed to COPY per write: large enough to amortise the call, small enough for memory.
COPY_BLOCK = 20_000
# Subscriptions due for expiry ended within this window: after the expiry jobs' last run
# (they look back one hour without a mark), so each is "ended, not yet handled".
DUE_WINDOW = timedelta(minutes=50)
KEY_DURATION = timedelta(days=30)
# Tables filled at once, each by its own server process (the machine's cores, at least two).
PARALLEL_TABLES = 2
KEYS_PER_BATCH = 50_000
# One key in this many is redeemed (while subscriptions to pair it with remain).
REDEEMED_EVERY = 10
SAMPLE_IP = "203.0.113.7"
# Base32 of 15 random bytes is 24 characters; a key body takes the first 20.
_RANDOM_BYTES = 15
_B32_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", ALPHABET.encode())

# (category, action, data): journal lines whose sentences render fully in the admin.
JOURNAL_KINDS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("user", "user.login", {}),
    ("user", "key.redeem", {"product": "{product}", "expires_at": "{when}"}),
    ("user", "license.check_failed", {"product": "{product}", "mode": "hwid",
                                       "reason": "hwid_mismatch"}),
    ("user", "user.change_password", {}),
    ("user", "discord.resync", {}),
    ("user", "user.logout", {}),
    ("moderation", "user.ban", {"reason": "generated", "until": ""}),
    ("moderation", "subscription.adjust", {"product": "{product}", "delta_seconds": 86400,
                                           "reason": "generated"}),
    ("moderation", "user.end_sessions", {}),
    ("error", "task.failed", {"place": "core.tasks.generated", "error": "RuntimeError"}),
)


@dataclass(frozen=True)
class DataSpec:
    users: int = 0
    keys: int = 0
    subscriptions: int = 0
    due: int = 0
    journal: int = 0
    product: str = "generated"
    linked_percent: int = 50  # members with a Discord account linked


@dataclass
class DataReport:
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    products: list[str] = field(default_factory=list)
    # Ends of the due subscriptions: (earliest, latest), for a job's window.
    due_between: tuple[datetime, datetime] | None = None


def _text(value: Any) -> str:
    """A value as COPY's text format spells it (callers pass no tabs, newlines or backslashes)."""
    if value is None:
        return r"\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return f"{int(value.total_seconds())} seconds"
    return str(value)


def _cipher(model: type[Model], name: str, plain: str) -> str:
    """The column's stored form of `plain`, computed once and shared by every generated row."""
    model_field = model._meta.get_field(name)
    assert isinstance(model_field, Field)
    return str(model_field.get_db_prep_save(plain, connection))


def _check_columns(model: type[Model], columns: Iterable[str]) -> None:
    """Every NOT NULL column without a database default is written (the ORM supplies defaults
    in Python, COPY does not): a field added to the model fails here, not as a COPY error."""
    given = set(columns)
    missing = [f.column for f in model._meta.concrete_fields
               if not f.null and not f.primary_key and f.column not in given]
    if missing:
        raise RuntimeError(f"datagen: {model._meta.db_table} lacks columns {missing}")


def _copy(model: type[Model], columns: list[str], rows: Iterable[tuple[Any, ...] | str],
          say: Callable[[str], None], label: str) -> int:
    """COPY `rows` into the model's table; returns how many. A row is a tuple of values or,
    on the largest tables, a line already in COPY's text format."""
    _check_columns(model, columns)
    table = model._meta.db_table
    quoted = ", ".join(f'"{c}"' for c in columns)
    started, count, block = time.perf_counter(), 0, []
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg 3's cursor under Django's wrapper
        with raw.copy(f'COPY "{table}" ({quoted}) FROM STDIN') as copy:
            for row in rows:
                block.append(row if isinstance(row, str) else "\t".join(map(_text, row)))
                if len(block) >= COPY_BLOCK:
                    copy.write("\n".join(block) + "\n")
                    count += len(block)
                    block = []
                    if count % (COPY_BLOCK * 10) == 0:
                        elapsed = time.perf_counter() - started
                        say(f"{label}: {count:,} rows, {count / elapsed:,.0f} rows/s")
            if block:
                copy.write("\n".join(block) + "\n")
                count += len(block)
    return count


def _key_bodies(n: int) -> Iterator[str]:
    """`n` random key bodies (20 Crockford base32 characters, 100 bits from the OS), made a
    block at a time: one urandom and one b32encode per block instead of per key."""
    step = 8 * _RANDOM_BYTES // 5
    length = KEY_GROUPS * 5
    for start in range(0, n, COPY_BLOCK):
        size = min(COPY_BLOCK, n - start)
        text = base64.b32encode(os.urandom(_RANDOM_BYTES * size)).translate(
            _B32_TO_CROCKFORD).decode()
        for i in range(size):
            yield text[i * step:i * step + length]


def _digester(purpose: str) -> Callable[[str], str]:
    """core.crypto.digest with the keyed state built once (the HMAC key setup per call costs
    as much as the digest itself); checked against digest() so the two cannot drift apart."""
    base = hmac.new(f"{settings.DIGEST_SECRET}:{purpose}".encode(), digestmod=hashlib.sha256)

    def run(value: str) -> str:
        h = base.copy()
        h.update(value.encode())
        return h.hexdigest()

    assert run("probe") == digest("probe", purpose=purpose)
    return run


def _products(spec: DataSpec, count: int) -> list[Product]:
    """The named product and, when subscriptions outnumber members, siblings `<slug>-2`...
    (one subscription per member and product)."""
    products = []
    for n in range(1, count + 1):
        slug = spec.product if n == 1 else f"{spec.product}-{n}"
        product = Product.objects.filter(slug=slug).first()
        if product is None:
            # A role id that no server has: the expiry jobs treat the product as role-bearing.
            product = Product.objects.create(
                slug=slug, name=f"{slug} (generated)",
                discord_role_id=990_000_000_000_000_000 + secrets.randbelow(10**15))
        products.append(product)
    return products


def _users(spec: DataSpec, tag: str, now: datetime, say: Callable[[str], None]) -> list[int]:
    role = Role.objects.filter(key="user").first()
    if role is None:
        raise InvalidInput(_("The member role is missing: run manage.py sync_roles first."))
    ip_cipher, ip_digest = _cipher(User, "registration_ip", SAMPLE_IP), digest(SAMPLE_IP,
                                                                               purpose="ip")
    discord_base = 900_000_000_000_000_000 + int(tag, 16) * 10_000_000
    columns = ["password", "last_login", "is_superuser", "username", "first_name", "last_name",
               "email", "is_staff", "is_active", "date_joined", "role_id", "invited_by_id",
               "discord_id", "discord_username", "discord_linked_at", "registration_ip_digest",
               "registration_ip", "can_invite", "session_epoch"]

    def rows() -> Iterator[tuple[Any, ...]]:
        for i in range(spec.users):
            name = f"gen{tag}_{i}"
            joined = now - timedelta(seconds=(spec.users - i) * 60)
            linked = (i + 1) * spec.linked_percent // 100 > i * spec.linked_percent // 100
            # "!" marks an unusable password, as set_unusable_password() writes it.
            yield (f"!{secrets.token_hex(20)}", None, False, name, "", "", f"{name}@example.test",
                   False, True, joined, role.pk, None, discord_base + i if linked else None,
                   name if linked else "", joined if linked else None, ip_digest, ip_cipher,
                   True, 0)

    _copy(User, columns, rows(), say, "users")
    return list(User.objects.filter(username__startswith=f"gen{tag}_")
                .order_by("pk").values_list("pk", flat=True))


def _subscription_slot(j: int, user_ids: list[int], products: list[Product]) -> tuple[int, int]:
    return user_ids[j % len(user_ids)], products[j // len(user_ids)].pk


def _subscriptions(spec: DataSpec, user_ids: list[int], products: list[Product],
                   now: datetime, say: Callable[[str], None]) -> tuple[datetime, datetime] | None:
    columns = ["user_id", "product_id", "started_at", "expires_at", "hwid_digest",
               "hwid_self_reset_at", "updated_at"]
    total, due = spec.subscriptions, min(spec.due, spec.subscriptions)
    users = len(user_ids)

    def rows() -> Iterator[tuple[Any, ...]]:
        for j in range(total):
            user_id, product_id = _subscription_slot(j, user_ids, products)
            # Due rows are spread evenly, and over distinct members as far as they go: the
            # position is rotated by the product, so each product's due rows fall on others.
            block = j // users
            k = j if (block + 1) * users > total else (j + block) % users + block * users
            if (k * due) // total != ((k + 1) * due) // total:
                expires = now - timedelta(seconds=1) - DUE_WINDOW * ((j % 997) / 997)
            elif j % 10 == 9:
                expires = now - timedelta(days=2 + j % 88)  # long over: handled before
            else:
                expires = now + timedelta(days=1 + j % 60, seconds=j % 3600)
            yield (user_id, product_id, expires - KEY_DURATION, expires, "", None, now)

    _copy(Subscription, columns, rows(), say, "subscriptions")
    return (now - timedelta(seconds=1) - DUE_WINDOW, now) if due else None


def _keys(spec: DataSpec, user_ids: list[int], products: list[Product], actor_id: int | None,
          now: datetime, say: Callable[[str], None]) -> int:
    # One ciphertext for every row (see the module's docstring): codes stay unknowable.
    code_cipher = _cipher(LicenseKey, "code", f"{settings.ZSPB.key_prefix}-GENER-ATEDK-EYXXX-XXXXX")
    hash_code = _digester("key")
    assert hash_code("ABC") == key_code_digest("ABC")
    batches = [uuid.uuid4() for _ in range(max(1, -(-spec.keys // KEYS_PER_BATCH)))]
    pairable = spec.subscriptions if user_ids else 0
    columns = ["code_digest", "code", "product_id", "duration", "status", "batch", "note",
               "redeem_by", "created_by_id", "created_at", "redeemed_by_id", "redeemed_at"]
    redeemed = 0

    actor_text = _text(actor_id)
    # Nine keys in ten are free and differ only in digest, batch and time: one line each,
    # formatted directly (the tuple path costs a third of the run at a million keys).
    free = f"\t{code_cipher}\t{products[0].pk}\t{_text(KEY_DURATION)}\tfree\t"

    def rows() -> Iterator[tuple[Any, ...] | str]:
        nonlocal redeemed
        for i, body in enumerate(_key_bodies(spec.keys)):
            created = now - timedelta(seconds=spec.keys - i)
            j = i // REDEEMED_EVERY
            if i % REDEEMED_EVERY == 0 and j < pairable:
                # Redeemed by the member holding subscription j, for its product.
                user_id, product_id = _subscription_slot(j, user_ids, products)
                redeemed += 1
                yield (hash_code(body), code_cipher, product_id, KEY_DURATION, "redeemed",
                       batches[i // KEYS_PER_BATCH], "", None, actor_id, created, user_id,
                       created + timedelta(seconds=1))
            else:
                yield (f"{hash_code(body)}{free}{batches[i // KEYS_PER_BATCH]}\t\t\\N\t"
                       f"{actor_text}\t{created.isoformat()}\t\\N\t\\N")

    _copy(LicenseKey, columns, rows(), say, "keys")
    return redeemed


def _journal(spec: DataSpec, user_ids: list[int], names: dict[int, str], products: list[Product],
             now: datetime, say: Callable[[str], None]) -> None:
    ip_cipher, ip_digest = _cipher(LogEntry, "ip", SAMPLE_IP), digest(SAMPLE_IP, purpose="ip")
    slug, when = products[0].slug, now.isoformat()
    kinds = [(category, action, json.dumps(
        {k: (v.format(product=slug, when=when) if isinstance(v, str) else v)
         for k, v in data.items()}, ensure_ascii=False))
        for category, action, data in JOURNAL_KINDS]
    columns = ["category", "action", "data", "ip_digest", "ip", "actor_id", "target_id",
               "actor_name", "target_name", "created_at"]
    # What a kind's rows share, as the start of their COPY line.
    prefixes = ["\t".join((category, action, data, ip_digest, ip_cipher, ""))
                for category, action, data in kinds]
    people = [(str(uid), names.get(uid, "")) for uid in user_ids] or [(r"\N", "")]
    # Newest last, spread over about 90 days at the full scale.
    spacing = timedelta(days=90) / max(spec.journal, 1)

    def rows() -> Iterator[str]:
        for i in range(spec.journal):
            actor, actor_name = people[i % len(people)]
            target, target_name = people[(i * 7 + 1) % len(people)]
            created = (now - spacing * (spec.journal - i)).isoformat()
            yield (f"{prefixes[i % len(prefixes)]}{actor}\t{target}\t{actor_name}\t"
                   f"{target_name}\t{created}")

    _copy(LogEntry, columns, rows(), say, "journal")


def _run_tables(tables: list[tuple[str, Callable[[], Any], int]],
                timed: Callable[[str, Callable[[], Any], int], Any]) -> dict[str, Any]:
    """Fill the tables (they depend on the members only) two at a time, each on a
    connection of its own: most of a COPY's time is the server updating the table's indexes,
    which a second server process does alongside. Inside a caller's transaction (tests) the
    other connections would not see its members, so the tables are filled one by one."""
    if connection.in_atomic_block or len(tables) < 2:
        return {label: timed(label, work, rows) for label, work, rows in tables}

    def fill(label: str, work: Callable[[], Any], rows: int) -> Any:
        try:
            return timed(label, work, rows)
        finally:
            connection.close()  # this thread's own connection

    with ThreadPoolExecutor(max_workers=PARALLEL_TABLES) as pool:
        futures = {label: pool.submit(fill, label, work, rows) for label, work, rows in tables}
        return {label: future.result() for label, future in futures.items()}


def data_generate(*, spec: DataSpec, say: Callable[[str], None] = lambda _text: None,
                  actor: User | None = None) -> DataReport:
    """Create the rows `spec` asks for; each table in one transaction of its own."""
    if connection.vendor != "postgresql":
        raise InvalidInput(_("The data generator needs PostgreSQL (it writes with COPY)."))
    if spec.subscriptions and not spec.users:
        raise InvalidInput(_("Subscriptions need members: pass --users too."))
    if spec.due > spec.subscriptions:
        raise InvalidInput(_("--due cannot exceed --subscriptions."))
    report = DataReport()
    now = timezone.now()
    tag = secrets.token_hex(3)  # keeps usernames and Discord ids unique across runs

    def timed(label: str, work: Callable[[], Any], rows: int) -> Any:
        started = time.perf_counter()
        with transaction.atomic():
            result = work()
        elapsed = time.perf_counter() - started
        report.rows[label], report.seconds[label] = rows, elapsed
        say(f"{label}: {rows:,} rows in {elapsed:.1f} s ({rows / max(elapsed, 1e-9):,.0f} rows/s)")
        return result

    per_product = max(spec.users, 1)
    products = _products(spec, max(1, -(-spec.subscriptions // per_product)))
    report.products = [p.slug for p in products]
    user_ids: list[int] = []
    if spec.users:
        user_ids = timed("users", lambda: _users(spec, tag, now, say), spec.users)
    tables: list[tuple[str, Callable[[], Any], int]] = []
    if spec.subscriptions:
        tables.append(("subscriptions",
                       lambda: _subscriptions(spec, user_ids, products, now, say),
                       spec.subscriptions))
    if spec.keys:
        actor_id = actor.pk if actor else None
        tables.append(("keys", lambda: _keys(spec, user_ids, products, actor_id, now, say),
                       spec.keys))
    if spec.journal:
        names = {uid: f"gen{tag}_{n}" for n, uid in enumerate(user_ids)}
        tables.append(("journal", lambda: _journal(spec, user_ids, names, products, now, say),
                       spec.journal))
    results = _run_tables(tables, timed)
    report.due_between = results.get("subscriptions")
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # Fresh planner statistics (and pg_class.reltuples, which the admin's counts read).
        for model in (User, Subscription, LicenseKey, LogEntry):
            cursor.execute(f'ANALYZE "{model._meta.db_table}"')
    say(f"analyze: {time.perf_counter() - started:.1f} s")
    return report
