"""manage.py backup / restore: an encrypted round trip into a fresh PostgreSQL database gives the
same rows in every table, and the commands refuse what would lose or expose data."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from core.errors import InvalidInput
from core.services.backups import (
    CHUNK,
    SUFFIX,
    _DecryptingReader,
    _EncryptingWriter,
    backup_rotate,
)
from tests.factories import InviteFactory, ProductFactory, UserFactory


def _counts(cursor: Any, tables: list[str]) -> dict[str, int]:
    counts = {}
    for table in tables:
        cursor.execute(f'SELECT count(*) FROM "{table}"')  # noqa: S608 (introspected names)
        counts[table] = cursor.fetchone()[0]
    return counts


def _backup(output: Path) -> Path:
    out = io.StringIO()
    call_command("backup", output=str(output), stdout=out)
    (path,) = output.glob(f"*{SUFFIX}")
    return path


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_backup_restored_into_a_fresh_database_has_the_same_rows_and_media(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, roles: Any
) -> None:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("BACKUP_KEY", key)
    media = tmp_path / "media"
    (media / "loaders").mkdir(parents=True)
    (media / "loaders" / "loader.bin").write_bytes(os.urandom(CHUNK + 1000))
    monkeypatch.setattr(settings, "MEDIA_ROOT", str(media))
    admin = UserFactory.create_batch(3)[0]
    ProductFactory.create_batch(2)
    InviteFactory.create_batch(2, created_by=admin)
    archive = _backup(tmp_path / "backups")
    assert archive.stat().st_mode & 0o077 == 0

    db = connection.settings_dict
    host, port, user = db["HOST"] or "127.0.0.1", str(db["PORT"] or 5432), db["USER"]
    fresh = f"zspb_restore_{uuid.uuid4().hex[:12]}"
    subprocess.run(["createdb", "-h", host, "-p", port, "-U", user, fresh], check=True)
    try:
        # The restoring server: its own configuration, as a new server's .env would give it.
        env = {**os.environ, "DEBUG": "1", "SECRET_KEY": settings.SECRET_KEY,
               "FIELD_ENCRYPTION_KEY": ",".join(settings.FIELD_ENCRYPTION_KEY),
               "BOT_API_TOKEN": settings.BOT_API_TOKEN,
               "LICENSE_SIGNING_KEY": settings.LICENSE_SIGNING_KEY,
               "BACKUP_KEY": key, "MEDIA_ROOT": str(tmp_path / "restored-media"),
               "DATABASE_URL": f"postgres://{user}@{host}:{port}/{fresh}",
               "DIGEST_SECRET": "a-server-configured-with-another-digest-secret"}
        result = subprocess.run(
            [sys.executable, "manage.py", "restore", str(archive)], env=env,
            cwd=settings.BASE_DIR, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        # The restored server's DIGEST_SECRET differs: the command says which value to use.
        assert f"DIGEST_SECRET={settings.DIGEST_SECRET}" in result.stdout
        assert "FIELD_ENCRYPTION_KEY=" not in result.stdout

        with connection.cursor() as cursor:
            tables = connection.introspection.table_names(cursor)
            expected = _counts(cursor, tables)
        with psycopg.connect(host=host, port=port, user=user, dbname=fresh) as restored:
            got = _counts(restored.cursor(), tables)
        assert got == expected
        assert expected["core_user"] == 3
        assert ((tmp_path / "restored-media" / "loaders" / "loader.bin").read_bytes()
                == (media / "loaders" / "loader.bin").read_bytes())
    finally:
        subprocess.run(["dropdb", "-h", host, "-p", port, "-U", user, "--if-exists", fresh],
                       check=False)


@pytest.mark.django_db
def test_restore_refuses_a_database_that_is_not_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKUP_KEY", Fernet.generate_key().decode())
    monkeypatch.setattr(settings, "MEDIA_ROOT", str(tmp_path / "media"))
    archive = _backup(tmp_path)
    with pytest.raises(CommandError, match="not empty"):
        call_command("restore", str(archive))


@pytest.mark.django_db
def test_backup_and_restore_refuse_to_run_without_backup_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BACKUP_KEY", raising=False)
    with pytest.raises(CommandError, match="BACKUP_KEY"):
        call_command("backup", output=str(tmp_path))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(CommandError, match="BACKUP_KEY"):
        call_command("restore", str(tmp_path / "any.zspb-backup"))


def test_backup_file_is_encrypted_and_a_truncated_or_foreign_one_fails(tmp_path: Path) -> None:
    fernet = Fernet(Fernet.generate_key())
    payload = os.urandom(2 * CHUNK + 123)
    path = tmp_path / "x"
    with path.open("wb") as out:
        writer = _EncryptingWriter(fernet, out)
        writer.write(payload)
        writer.close()
    data = path.read_bytes()
    assert payload[:64] not in data
    with path.open("rb") as src:
        assert _DecryptingReader(fernet, src).read() == payload

    path.write_bytes(data[: len(data) // 2])
    with path.open("rb") as src, pytest.raises(InvalidInput, match="truncated"):
        _DecryptingReader(fernet, src).read()
    path.write_bytes(data)
    with path.open("rb") as src, pytest.raises(InvalidInput, match="cannot be decrypted"):
        _DecryptingReader(Fernet(Fernet.generate_key()), src).read()


def test_rotation_keeps_the_newest_backups_only(tmp_path: Path) -> None:
    names = [f"zspb-202611{day:02d}T033000Z{SUFFIX}" for day in range(1, 17)]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a backup")
    removed = backup_rotate(output=tmp_path, keep=14)
    assert [path.name for path in removed] == names[:2]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([*names[2:], "notes.txt"])


@pytest.mark.django_db
def test_restore_of_a_missing_file_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKUP_KEY", Fernet.generate_key().decode())
    with pytest.raises(CommandError, match="No such backup file"):
        call_command("restore", str(tmp_path / "missing.zspb-backup"))
