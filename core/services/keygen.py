"""Bulk writing of fresh licence keys: codes, digests and ciphertexts made in Python, rows
written to PostgreSQL with one COPY per chunk.

The ORM path (a LicenseKey object per key, bulk_create's INSERT) spent most of a key's time
building objects and SQL; here a key is three strings and one COPY line. Per key what remains
is the Fernet encryption (AES-CBC + HMAC, about two thirds of the Python time), the keyed
digest and the code itself. Nothing outlives a block of BLOCK keys unless the caller asks for
the codes, so memory is bounded by the block whatever the chunk or batch.

Security is the ORM path's: codes from the OS's CSPRNG (`secrets`), the lookup digest of
core.crypto.digest (same key, same purpose), the ciphertext of the field's own crypter
(encrypted_model_fields' CRYPTER, so key rotation applies), never the plain code in a row.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import encrypted_model_fields.fields as encrypted_fields
from django.conf import settings
from django.db import connection
from django.db.backends.utils import CursorDebugWrapper
from django.db.models import Field

from core.crypto import digester, random_bodies
from core.models import LicenseKey
from core.services.keygen_tokens import primary_key_batch

# A code's random part: GROUPS groups of GROUP_LEN characters, 5 bits each (100 bits).
GROUPS = 4
GROUP_LEN = 5
BODY_LEN = GROUPS * GROUP_LEN
# Keys made (and their COPY text held) at a time inside a chunk.
BLOCK = 1000
DIGEST_PURPOSE = "key"  # core.services.keys.key_code_digest's
_COLUMNS = ("code_digest", "code", "product", "duration", "status", "batch", "note",
            "redeem_by", "created_by", "created_at")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


@dataclass(frozen=True)
class KeyRowSpec:
    """What every key of one batch shares."""

    product_id: int
    duration: timedelta
    batch: uuid.UUID
    note: str
    redeem_by: datetime | None
    created_by_id: int | None
    created_at: datetime


def _format_code(prefix: str, body: str) -> str:
    # Spelled out for GROUPS = 4 (a join over a generator costs a third of the digest).
    return f"{prefix}-{body[0:5]}-{body[5:10]}-{body[10:15]}-{body[15:20]}"


def _encrypter() -> Callable[[list[bytes]], list[str]]:
    """Encryption of a block of codes under the encrypted field's current key."""
    crypter = encrypted_fields.CRYPTER
    batch = primary_key_batch(crypter, settings.FIELD_ENCRYPTION_KEY)
    if batch is not None:
        return batch.encrypt
    # A crypter not built from the settings (a test's): its own Fernet, one code at a time.
    return lambda messages: [crypter.encrypt(m).decode("ascii") for m in messages]


def _blocks(n: int, *, prefix: str) -> Iterator[list[tuple[str, str, str]]]:
    """(code, digest, ciphertext) of `n` new keys, BLOCK at a time."""
    base = digester(DIGEST_PURPOSE)  # each key's digest starts from a copy
    encrypt = _encrypter()
    for start in range(0, n, BLOCK):
        bodies = random_bodies(min(BLOCK, n - start), BODY_LEN)
        codes = [_format_code(prefix, body) for body in bodies]
        digests = []
        for body in bodies:
            # Of the random part alone: a typed code is normalised to it before the lookup.
            mac = base.copy()
            mac.update(body.encode())
            digests.append(mac.hexdigest())
        ciphertexts = encrypt([code.encode() for code in codes])
        yield list(zip(codes, digests, ciphertexts, strict=True))


def keys_insert(*, spec: KeyRowSpec, count: int, prefix: str, keep_codes: bool) -> list[str]:
    """Write `count` free keys of `spec` in the current transaction; their codes when
    `keep_codes`, else an empty list (the codes are then only in the rows' ciphertext)."""
    blocks = _blocks(count, prefix=prefix)
    if connection.vendor == "postgresql":
        return _copy(spec, blocks, keep_codes)
    return _insert(spec, blocks, keep_codes)


def _field(name: str) -> Field[Any, Any]:
    field = LicenseKey._meta.get_field(name)
    assert isinstance(field, Field)
    return field


def _column_list() -> str:
    return ", ".join(connection.ops.quote_name(_field(name).column) for name in _COLUMNS)


def _copy_text(spec: KeyRowSpec) -> str:
    """The constant columns of every row in COPY's text format, from the tab after the
    ciphertext to the end of the line."""
    d = spec.duration
    values = [
        str(spec.product_id),
        f"{d.days} days {d.seconds} seconds {d.microseconds} microseconds",
        LicenseKey.Status.FREE.value,
        str(spec.batch),
        spec.note.translate(_COPY_ESCAPES),
        spec.redeem_by.isoformat() if spec.redeem_by is not None else "\\N",
        str(spec.created_by_id) if spec.created_by_id is not None else "\\N",
        spec.created_at.isoformat(),
    ]
    return "\t" + "\t".join(values) + "\n"


def _copy(spec: KeyRowSpec, blocks: Iterator[list[tuple[str, str, str]]],
          keep_codes: bool) -> list[str]:
    table = connection.ops.quote_name(LicenseKey._meta.db_table)
    sql = f"COPY {table} ({_column_list()}) FROM STDIN"
    suffix = _copy_text(spec)
    codes: list[str] = []
    with connection.cursor() as cursor:
        # Shown in connection.queries (and counted by tests) like any statement: the COPY goes
        # to psycopg directly, past Django's execute().
        logged = (cursor.debug_sql(sql) if isinstance(cursor, CursorDebugWrapper)
                  else nullcontext())
        with logged, connection.wrap_database_errors, cursor.cursor.copy(sql) as copy:
            for block in blocks:
                # psycopg sends as it goes: PostgreSQL writes one block while the next is made.
                copy.write("".join(f"{digest}\t{ciphertext}{suffix}"
                                   for _code, digest, ciphertext in block))
                if keep_codes:
                    codes.extend(code for code, _digest, _ciphertext in block)
    return codes


def _insert(spec: KeyRowSpec, blocks: Iterator[list[tuple[str, str, str]]],
            keep_codes: bool) -> list[str]:
    """The same rows for other databases (SQLite in development): one executemany per block."""
    meta = LicenseKey._meta
    constants = [_field(name).get_db_prep_save(value, connection) for name, value in (
        ("product", spec.product_id), ("duration", spec.duration),
        ("status", LicenseKey.Status.FREE.value), ("batch", spec.batch), ("note", spec.note),
        ("redeem_by", spec.redeem_by), ("created_by", spec.created_by_id),
        ("created_at", spec.created_at))]
    table = connection.ops.quote_name(meta.db_table)
    marks = ", ".join(["%s"] * len(_COLUMNS))
    # Identifiers from the model, quoted; the values go as parameters.
    sql = f"INSERT INTO {table} ({_column_list()}) VALUES ({marks})"  # noqa: S608
    codes: list[str] = []
    with connection.cursor() as cursor:
        for block in blocks:
            cursor.executemany(sql, [(digest, ciphertext, *constants)
                                     for _code, digest, ciphertext in block])
            if keep_codes:
                codes.extend(code for code, _digest, _ciphertext in block)
    return codes
