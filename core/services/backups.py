"""Encrypted backups: the database (pg_dump -Fc, or the SQLite file), the media directory and the
two secrets the data depends on (DIGEST_SECRET, FIELD_ENCRYPTION_KEY), in one tar encrypted with
the BACKUP_KEY Fernet key. `manage.py backup` / `restore` and the nightly zspb-backup.timer call
these.

File format: the magic line, then chunks, each a 4-byte big-endian length and a Fernet token of
(8-byte chunk number, 1-byte "last" flag, up to CHUNK bytes of the tar). Chunking keeps a
200 MB loader out of memory; the numbers and the flag make a reordered, repeated or truncated
file fail to decrypt instead of restoring part of a backup.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import struct
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import IO, Any

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import connection

from core.errors import Conflict, InvalidInput

# Messages here reach only the operator's terminal (manage.py backup / restore, the backup
# unit's journal), in English like the other management commands, so they are not gettext
# strings for the member-facing catalogue.

MAGIC = b"ZSPB-BACKUP-1\n"
CHUNK = 4 * 1024 * 1024
SUFFIX = ".zspb-backup"
NAME = re.compile(r"^zspb-\d{8}T\d{6}Z" + re.escape(SUFFIX) + r"$")
_HEADER = struct.Struct(">QB")
_LENGTH = struct.Struct(">I")


@dataclass(frozen=True)
class RestoreResult:
    vendor: str
    media_files: int
    # Secrets to put in .env because the running configuration differs from the backup's.
    secrets_to_set: dict[str, str]


def _fernet(key: str | None) -> Fernet:
    if not key:
        raise InvalidInput("BACKUP_KEY is not set: backups are encrypted with it "
                             "(init.sh writes one into .env; keep a copy off the server).")
    try:
        return Fernet(key)
    except ValueError:
        raise InvalidInput("BACKUP_KEY is not a Fernet key (32 url-safe base64 bytes).") from None


class _EncryptingWriter:
    """A write-only file object for tarfile's stream mode that encrypts in chunks."""

    def __init__(self, fernet: Fernet, out: IO[bytes]) -> None:
        self._fernet, self._out, self._buffer, self._number = fernet, out, bytearray(), 0
        out.write(MAGIC)

    def write(self, data: bytes) -> int:
        self._buffer += data
        while len(self._buffer) > CHUNK:
            self._emit(bytes(self._buffer[:CHUNK]), last=False)
            del self._buffer[:CHUNK]
        return len(data)

    def close(self) -> None:
        self._emit(bytes(self._buffer), last=True)
        self._buffer.clear()

    def _emit(self, data: bytes, *, last: bool) -> None:
        token = self._fernet.encrypt(_HEADER.pack(self._number, last) + data)
        self._out.write(_LENGTH.pack(len(token)) + token)
        self._number += 1


class _DecryptingReader:
    """A read-only file object for tarfile's stream mode over an encrypted backup."""

    def __init__(self, fernet: Fernet, source: IO[bytes]) -> None:
        self._fernet, self._in, self._buffer = fernet, source, bytearray()
        self._number, self._done = 0, False
        if source.read(len(MAGIC)) != MAGIC:
            raise InvalidInput("This file is not a ZalypaSPB backup.")

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or len(self._buffer) < size):
            self._next_chunk()
        if size < 0:
            size = len(self._buffer)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _next_chunk(self) -> None:
        length = self._in.read(_LENGTH.size)
        if len(length) != _LENGTH.size:
            raise InvalidInput("The backup is truncated.")
        size = _LENGTH.unpack(length)[0]
        token = self._in.read(size)
        if len(token) != size:
            raise InvalidInput("The backup is truncated.")
        try:
            plain = self._fernet.decrypt(token)
        except InvalidToken:
            raise InvalidInput("The backup cannot be decrypted with this BACKUP_KEY "
                                 "(wrong key or damaged file).") from None
        number, last = _HEADER.unpack_from(plain)
        if number != self._number:
            raise InvalidInput("The backup is damaged (chunks out of order).")
        self._number += 1
        self._done = bool(last)
        self._buffer += plain[_HEADER.size:]


def _pg_args() -> tuple[list[str], dict[str, str]]:
    db = connection.settings_dict
    args = ["-h", str(db.get("HOST") or "127.0.0.1"), "-p", str(db.get("PORT") or 5432),
            "-U", str(db.get("USER") or "postgres"), "-d", str(db["NAME"])]
    env = dict(os.environ)
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])
    return args, env


def _run(command: list[str], env: dict[str, str] | None = None) -> None:
    # The commands are fixed lists (pg_dump/pg_restore and settings values), no shell.
    result = subprocess.run(command, env=env, capture_output=True, text=True,  # noqa: S603
                            check=False)
    if result.returncode != 0:
        raise InvalidInput(f"{command[0]} failed: {result.stderr.strip()[-2000:]}")


def _dump_database(target: Path) -> str:
    vendor = connection.vendor
    if vendor == "postgresql":
        args, env = _pg_args()
        _run(["pg_dump", "-Fc", "--no-owner", "--no-privileges", "-f", str(target), *args], env)
    elif vendor == "sqlite":
        # The online-backup API gives a consistent copy while the site keeps writing.
        connection.ensure_connection()
        with sqlite3.connect(target) as copy:
            connection.connection.backup(copy)
        copy.close()
    else:
        raise InvalidInput(f"Backups support PostgreSQL and SQLite, not {vendor}.")
    return vendor


def backup_rotate(*, output: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` backups in `output` (by their timestamped names)."""
    backups = sorted(path for path in output.iterdir() if NAME.match(path.name))
    removed = backups[:-keep] if keep > 0 else []
    for path in removed:
        path.unlink()
    return removed


def backup_create(*, output: Path, key: str | None, keep: int) -> Path:
    """Write one encrypted backup into `output` and rotate; returns the new file."""
    fernet = _fernet(key)
    if keep < 1:
        raise InvalidInput("Keep at least one backup.")
    output.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = datetime.now(timezone.utc)
    target = output / f"zspb-{now:%Y%m%dT%H%M%SZ}{SUFFIX}"
    partial = target.with_name(target.name + ".partial")
    media = Path(settings.MEDIA_ROOT)
    with tempfile.TemporaryDirectory(prefix="zspb-backup-") as work:
        dump = Path(work) / "database"
        vendor = _dump_database(dump)
        manifest = {"format": 1, "created": now.isoformat(), "vendor": vendor}
        secrets = {"DIGEST_SECRET": settings.DIGEST_SECRET,
                   "FIELD_ENCRYPTION_KEY": ",".join(settings.FIELD_ENCRYPTION_KEY)}
        (Path(work) / "manifest.json").write_text(json.dumps(manifest))
        (Path(work) / "secrets.json").write_text(json.dumps(secrets))
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            writer = _EncryptingWriter(fernet, out)
            with tarfile.open(fileobj=writer, mode="w|") as tar:  # type: ignore[call-overload]
                tar.add(Path(work) / "manifest.json", arcname="manifest.json")
                tar.add(Path(work) / "secrets.json", arcname="secrets.json")
                tar.add(dump, arcname="database")
                if media.is_dir():
                    tar.add(media, arcname="media")
            writer.close()
            out.flush()
            os.fsync(out.fileno())
    partial.rename(target)
    backup_rotate(output=output, keep=keep)
    return target


def _database_is_empty() -> bool:
    with connection.cursor() as cursor:
        return not connection.introspection.table_names(cursor)


def _safe_members(tar: tarfile.TarFile) -> Any:
    for member in tar:
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts or not (member.isfile() or member.isdir()):
            raise InvalidInput(f"The backup holds an unsafe entry: {member.name}")
        yield member


def backup_restore(*, archive: Path, key: str | None) -> RestoreResult:
    """Restore a backup into an empty database and an empty media directory."""
    fernet = _fernet(key)
    if not archive.is_file():
        raise InvalidInput(f"No such backup file: {archive}")
    if not _database_is_empty():
        raise Conflict(f"The database {connection.settings_dict['NAME']} is not empty: restore "
                       "only into a new, empty database (drop and create it first).")
    media = Path(settings.MEDIA_ROOT)
    if media.is_dir() and any(path.is_file() for path in media.rglob("*")):
        raise Conflict(f"The media directory {media} is not empty.")
    with tempfile.TemporaryDirectory(prefix="zspb-restore-") as work, archive.open("rb") as src:
        reader = _DecryptingReader(fernet, src)
        with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
            # The "data" filter (Python 3.10.12+) on top of our own check, where it exists.
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            for member in _safe_members(tar):
                tar.extract(member, work, set_attrs=False, **safe)
        root = Path(work)
        manifest = json.loads((root / "manifest.json").read_text())
        vendor = manifest["vendor"]
        if vendor != connection.vendor:
            raise InvalidInput(f"The backup is of a {vendor} database; this site uses "
                               f"{connection.vendor}.")
        if vendor == "postgresql":
            args, env = _pg_args()
            _run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error",
                  "--single-transaction", *args, str(root / "database")], env)
        else:
            connection.close()
            shutil.copyfile(root / "database", str(connection.settings_dict["NAME"]))
        files = 0
        if (root / "media").is_dir():
            media.mkdir(parents=True, exist_ok=True)
            for path in (root / "media").rglob("*"):
                target = media / path.relative_to(root / "media")
                if path.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, target)
                    files += 1
        saved = json.loads((root / "secrets.json").read_text())
    current = {"DIGEST_SECRET": settings.DIGEST_SECRET,
               "FIELD_ENCRYPTION_KEY": ",".join(settings.FIELD_ENCRYPTION_KEY)}
    differing = {name: value for name, value in saved.items() if current.get(name) != value}
    return RestoreResult(vendor=vendor, media_files=files, secrets_to_set=differing)
