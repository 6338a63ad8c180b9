from __future__ import annotations

import pytest
from cryptography.fernet import Fernet, MultiFernet
from django.db import connection
from encrypted_model_fields import fields as emf

from core.models import EncryptionCanary, User
from core.models.system import CANARY_PLAINTEXT
from core.services.encryption import data_reencrypt


def _raw(table: str, column: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608
        return str(cursor.fetchone()[0])


@pytest.mark.django_db
def test_rotation_rewrites_with_new_key(member, monkeypatch):
    old_crypter = emf.CRYPTER
    member.registration_ip = "192.0.2.77"
    member.save()
    canary = EncryptionCanary.objects.create(value=CANARY_PLAINTEXT)
    new_key = Fernet(Fernet.generate_key())
    # new key first, old keys still listed: reads work, writes use the new key
    monkeypatch.setattr(emf, "CRYPTER", MultiFernet([new_key, *old_crypter._fernets]))
    counts = data_reencrypt()
    assert counts["core.User"] >= 1 and counts["core.EncryptionCanary"] >= 1
    # only the new key left: everything still decrypts
    monkeypatch.setattr(emf, "CRYPTER", MultiFernet([new_key]))
    assert User.objects.get(pk=member.pk).registration_ip == "192.0.2.77"
    assert EncryptionCanary.objects.get(pk=canary.pk).decrypts()
    token = _raw("core_user", "registration_ip", member.pk)
    assert new_key.decrypt(token.encode()) == b"192.0.2.77"
