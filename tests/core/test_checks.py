from __future__ import annotations

import pytest
from django.db import connection

from core.checks import encryption_key_matches
from core.models import EncryptionCanary
from core.models.system import CANARY_PLAINTEXT


@pytest.mark.django_db
def test_canary_decrypts_with_current_key():
    EncryptionCanary.objects.all().delete()
    EncryptionCanary.objects.create(value=CANARY_PLAINTEXT)
    assert encryption_key_matches(None) == []


@pytest.mark.django_db
def test_wrong_key_is_reported():
    from cryptography.fernet import Fernet

    EncryptionCanary.objects.all().delete()
    foreign = Fernet(Fernet.generate_key()).encrypt(CANARY_PLAINTEXT.encode()).decode()
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO core_encryptioncanary (value) VALUES (%s)", [foreign])
    errors = encryption_key_matches(None)
    assert [e.id for e in errors] == ["zspb.E001"]
