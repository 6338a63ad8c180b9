"""Code generation and keyed digests.

Secrets (keys, invite and link codes, IPs) are looked up by an HMAC-SHA256 digest column with a
unique index; an encrypted copy is kept only where staff must see the value. Encrypted columns
cannot be filtered on: a filter silently matches nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings

# Crockford's base32: no I, L, O, U, so codes survive being read aloud or retyped.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CONFUSABLE = str.maketrans({"O": "0", "I": "1", "L": "1"})
BITS_PER_CHAR = 5


def digester(purpose: str) -> hmac.HMAC:
    """The keyed HMAC of `purpose`, before any value: `digest` of many values (bulk key
    generation) copies it per value instead of deriving the key's pads each time."""
    return hmac.new(f"{settings.DIGEST_SECRET}:{purpose}".encode(), digestmod=hashlib.sha256)


def digest(value: str, *, purpose: str) -> str:
    """Keyed digest; `purpose` separates namespaces so equal values in two tables differ."""
    mac = digester(purpose)
    mac.update(value.encode())
    return mac.hexdigest()


def random_code(groups: int, group_len: int = 5) -> str:
    """`groups` groups of base32 characters, each carrying 5 bits from the OS's CSPRNG.

    One randbits call per code instead of one secrets.choice per character: bulk generation
    of 100,000 keys spends most of its Python time here.
    """
    length = groups * group_len
    value = secrets.randbits(length * BITS_PER_CHAR)
    chars = []
    for _ in range(length):
        chars.append(ALPHABET[value & 31])
        value >>= BITS_PER_CHAR
    return "-".join("".join(chars[i : i + group_len]) for i in range(0, length, group_len))


# A random byte to the character of its low 5 bits (uniform: 256 is a multiple of 32).
_LOW_BITS = bytes(ord(ALPHABET[b & 31]) for b in range(256))


def random_bodies(n: int, length: int) -> list[str]:
    """`n` random strings of `length` base32 characters, 5 CSPRNG bits each, undashed: bulk
    key generation's random_code. One `secrets.token_bytes` for all of them, a byte per
    character mapped by its low 5 bits."""
    text = secrets.token_bytes(n * length).translate(_LOW_BITS).decode("ascii")
    return [text[i:i + length] for i in range(0, n * length, length)]


def normalize_code(raw: str, *, body_len: int, prefix: str = "") -> str | None:
    """Canonical random part of a typed code, or None when it cannot be one.

    Upper case, separators dropped, confusable letters mapped. The prefix is optional on input;
    it is only stripped when what remains has the body's length, so a random part that happens
    to begin with the prefix letters is not mangled.
    """
    cleaned = "".join(ch for ch in raw.upper() if ch.isascii() and ch.isalnum())
    prefix = prefix.upper()
    if prefix and len(cleaned) == len(prefix) + body_len and cleaned.startswith(prefix):
        cleaned = cleaned[len(prefix) :]
    body = cleaned.translate(_CONFUSABLE)
    if len(body) != body_len or any(ch not in ALPHABET for ch in body):
        return None
    return body
