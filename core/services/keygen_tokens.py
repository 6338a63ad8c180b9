"""Fernet tokens for many messages at once: the bulk key generator's encryption.

cryptography's Fernet.encrypt builds a padder, a CBC cipher context and an HMAC object per
message, and reads os.urandom per message: about two thirds of a generated key's time. Here
the same tokens (the Fernet specification: 0x80, big-endian seconds, a random 16-byte IV,
AES-128-CBC of the PKCS7-padded message under the key's second half, HMAC-SHA256 of all that
under its first half, URL-safe base64) are made for a block of equal-length messages: one
os.urandom for every IV, and CBC's chaining (C_j = AES(P_j xor C_j-1), C_0 = IV) done a block
column at a time for all messages, one XOR of two big integers and one call of a single AES
context per column. Fernet.decrypt (the encrypted field's reading) verifies and reads them like
its own; tests/core/services/test_keygen.py checks byte equality with Fernet for given IVs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

AES_BLOCK = 16
_VERSION = b"\x80"


class FernetBatch:
    """Fernet encryption under one key, for lists of messages of one length."""

    def __init__(self, key: str | bytes) -> None:
        raw = base64.urlsafe_b64decode(key)
        if len(raw) != 32:
            raise ValueError("A Fernet key is 32 url-safe base64-encoded bytes.")
        self._signing = hmac.new(raw[:16], digestmod=hashlib.sha256)
        # ECB of one block is the AES block function; CBC's chaining is done in encrypt().
        self._aes: Any = Cipher(algorithms.AES(raw[16:]),
                                modes.ECB()).encryptor()  # noqa: S305

    def encrypt(self, messages: Sequence[bytes], *, ivs: bytes | None = None,
                at: int | None = None) -> list[str]:
        """The tokens of `messages` (all of one length). `ivs` and `at` are for tests only:
        by default every IV comes from os.urandom and the time is now."""
        n = len(messages)
        if not n:
            return []
        length = len(messages[0])
        if any(len(message) != length for message in messages):
            raise ValueError("FernetBatch.encrypt takes messages of one length.")
        pad = AES_BLOCK - length % AES_BLOCK
        padded = [message + bytes((pad,)) * pad for message in messages]
        width = length + pad
        if ivs is None:
            ivs = os.urandom(AES_BLOCK * n)
        if len(ivs) != AES_BLOCK * n:
            raise ValueError("One 16-byte IV per message.")
        size = AES_BLOCK * n
        previous = int.from_bytes(ivs, "big")
        columns = []
        for offset in range(0, width, AES_BLOCK):
            column = b"".join(message[offset:offset + AES_BLOCK] for message in padded)
            encrypted = self._aes.update(
                (int.from_bytes(column, "big") ^ previous).to_bytes(size, "big"))
            columns.append(encrypted)
            previous = int.from_bytes(encrypted, "big")
        head = _VERSION + int(time.time() if at is None else at).to_bytes(8, "big")
        tokens = []
        signing = self._signing
        for i in range(0, size, AES_BLOCK):
            body = head + ivs[i:i + AES_BLOCK] + b"".join(c[i:i + AES_BLOCK] for c in columns)
            mac = signing.copy()
            mac.update(body)
            tokens.append(base64.urlsafe_b64encode(body + mac.digest()).decode("ascii"))
        return tokens


def primary_key_batch(crypter: Any, keys: Sequence[str]) -> FernetBatch | None:
    """A FernetBatch for the key `crypter` (the encrypted field's MultiFernet) encrypts with,
    found among the configured `keys`; None when it is none of them (then use the crypter)."""
    probe = crypter.encrypt(b"probe")
    for key in keys:
        try:
            Fernet(key).decrypt(probe)
        except InvalidToken:
            continue
        return FernetBatch(key)
    return None
