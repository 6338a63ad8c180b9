"""Bulk key writing (core.services.keygen, keygen_tokens): chunks, COPY, codes kept or read
back, and Fernet tokens made a block at a time."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import encrypted_model_fields.fields as encrypted_fields
import pytest
from cryptography.fernet import Fernet, MultiFernet
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.crypto import ALPHABET, random_bodies
from core.models import KeyGenerationJob, LicenseKey
from core.services import keygen
from core.services import keys as key_services
from core.services.keygen_tokens import FernetBatch, primary_key_batch
from core.services.keys import key_generation_run, key_lookup_digest, keys_generate


def _generate(actor: Any, product: Any, count: int, **kw: Any) -> key_services.GeneratedKeys:
    return keys_generate(actor=actor, product=product, duration=timedelta(days=30),
                         count=count, **kw)


def _assert_stored(codes: list[str], batch: Any) -> None:
    """Each code is one row: found by its digest, its ciphertext decrypts to it."""
    keys = LicenseKey.objects.filter(batch=batch)
    assert keys.count() == len(codes) == len(set(codes))
    assert keys.values("code_digest").distinct().count() == len(codes)
    for code in codes:
        key = LicenseKey.objects.get(code_digest=key_lookup_digest(code))
        assert key.code == code and key.batch == batch


# --- Fernet tokens a block at a time ----------------------------------------------------------

@pytest.mark.parametrize("length", [1, 15, 16, 17, 28, 33])
def test_batch_tokens_are_fernets_byte_for_byte(length: int) -> None:
    key = Fernet.generate_key()
    messages = [os.urandom(length) for _ in range(7)]
    ivs = os.urandom(16 * len(messages))
    expected = [Fernet(key)._encrypt_from_parts(m, 1_700_000_000, ivs[16 * i:16 * i + 16])
                .decode() for i, m in enumerate(messages)]
    assert FernetBatch(key).encrypt(messages, ivs=ivs, at=1_700_000_000) == expected


def test_batch_tokens_decrypt_and_differ() -> None:
    key = Fernet.generate_key()
    tokens = FernetBatch(key).encrypt([b"same message"] * 50)
    assert len(set(tokens)) == 50  # a fresh IV each
    assert {Fernet(key).decrypt(t.encode()) for t in tokens} == {b"same message"}
    with pytest.raises(ValueError, match="one length"):
        FernetBatch(key).encrypt([b"a", b"bb"])


def test_primary_key_is_the_one_the_crypter_encrypts_with() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    crypter = MultiFernet([Fernet(new), Fernet(old)])
    batch = primary_key_batch(crypter, [old, new])
    assert batch is not None
    token = batch.encrypt([b"x"])[0].encode()
    assert Fernet(new).decrypt(token) == b"x"
    assert primary_key_batch(crypter, [old]) is None


# --- Codes ------------------------------------------------------------------------------------

def test_random_bodies_use_the_whole_alphabet() -> None:
    bodies = random_bodies(2000, 20)
    assert len(bodies) == 2000 and {len(b) for b in bodies} == {20}
    assert set("".join(bodies)) == set(ALPHABET)
    assert len(set(bodies)) == 2000


# --- keys_generate: chunks, codes kept or read back, queries -----------------------------------

@pytest.mark.django_db
def test_chunk_boundary_writes_every_key_once(moderator: Any, product: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(key_services, "INSERT_BATCH", 50)
    monkeypatch.setattr(keygen, "BLOCK", 7)
    redeem_by = timezone.now() + timedelta(days=3)
    note = "tab\there, back\\slash, new\nline"
    generated = _generate(moderator, product, 51, note=note, redeem_by=redeem_by)
    assert generated.count == 51 and len(generated.codes) == 51
    _assert_stored(generated.codes, generated.batch)
    keys = LicenseKey.objects.filter(batch=generated.batch)
    assert set(keys.values_list("status", "duration", "note", "redeem_by", "created_by",
                                "product", "redeemed_by", "redeemed_at")) == {
        ("free", timedelta(days=30), note, redeem_by, moderator.pk, product.pk, None, None)}
    assert keys.values("created_at").distinct().count() == 1
    # Read back in the order they were made.
    assert list(keys.order_by("id").values_list("code", flat=True)) == generated.codes


@pytest.mark.django_db
def test_queries_depend_on_chunks_not_keys(moderator: Any, product: Any,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(key_services, "INSERT_BATCH", 40)
    counts = {}
    for count in (1, 40, 41, 80):
        with CaptureQueriesContext(connection) as captured:
            _generate(moderator, product, count)
        copies = [q for q in captured.captured_queries if q["sql"].startswith("COPY ")]
        counts[count] = (len(captured), len(copies))
    chunks = {1: 1, 40: 1, 41: 2, 80: 2}
    assert {n: c for n, (_q, c) in counts.items()} == chunks
    assert counts[1] == counts[40] and counts[41] == counts[80]
    assert counts[41][0] == counts[40][0] + 1


@pytest.mark.django_db
def test_large_batch_codes_are_read_back_not_kept(moderator: Any, product: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(key_services, "CODES_KEPT_MAX", 10)
    monkeypatch.setattr(key_services, "INSERT_BATCH", 8)
    generated = _generate(moderator, product, 25)
    assert generated.kept is None
    codes = list(generated.iter_codes())
    assert codes == generated.codes and len(codes) == 25
    _assert_stored(codes, generated.batch)
    small = _generate(moderator, product, 10)
    assert small.kept is not None and small.codes == list(small.iter_codes())


@pytest.mark.django_db
def test_crypter_without_a_configured_key_still_encrypts(moderator: Any, product: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # A key rotation's crypter not (yet) in the settings: its own Fernet is used.
    monkeypatch.setattr(encrypted_fields, "CRYPTER", MultiFernet([Fernet(Fernet.generate_key())]))
    generated = _generate(moderator, product, 3)
    _assert_stored(generated.codes, generated.batch)


@pytest.mark.django_db
def test_insert_path_of_other_databases_writes_the_same_rows(moderator: Any,
                                                             product: Any) -> None:
    spec = keygen.KeyRowSpec(product_id=product.pk, duration=timedelta(hours=5),
                             batch=KeyGenerationJob().batch, note="n", redeem_by=None,
                             created_by_id=moderator.pk, created_at=timezone.now())
    codes = keygen._insert(spec, keygen._blocks(12, prefix="ZSPB"), True)
    _assert_stored(codes, spec.batch)
    assert set(LicenseKey.objects.filter(batch=spec.batch).values_list("duration", flat=True)) \
        == {timedelta(hours=5)}


# --- Jobs -------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_job_writes_one_copy_per_chunk(moderator: Any, product: Any,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(key_services, "INSERT_BATCH", 40)
    per_job = {}
    for count in (40, 120):
        job = KeyGenerationJob.objects.create(product=product, duration=timedelta(days=1),
                                              count=count, created_by=moderator)
        with CaptureQueriesContext(connection) as captured:
            job = key_generation_run(job_id=job.pk)
        assert (job.status, job.done) == ("done", count)
        copies = sum(q["sql"].startswith("COPY ") for q in captured.captured_queries)
        per_job[count] = (len(captured), copies)
        keys = LicenseKey.objects.filter(batch=job.batch)
        assert keys.count() == count
        assert keys.values("code_digest").distinct().count() == count
        key = keys.first()
        assert key is not None and key_lookup_digest(key.code) == key.code_digest
    assert per_job[40][1] == 1 and per_job[120][1] == 3
    # Each further chunk costs the same few statements (lock, COPY, progress, savepoints).
    per_chunk = (per_job[120][0] - per_job[40][0]) / 2
    assert per_chunk == int(per_chunk) and per_chunk <= 6
