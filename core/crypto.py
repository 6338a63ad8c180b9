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


def digest(value: str, *, purpose: str) -> str:
    """Keyed digest; `purpose` separates namespaces so equal values in two tables differ."""
    key = f"{settings.DIGEST_SECRET}:{purpose}".encode()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def random_code(groups: int, group_len: int = 5) -> str:
    chars = [secrets.choice(ALPHABET) for _ in range(groups * group_len)]
    return "-".join("".join(chars[i : i + group_len]) for i in range(0, len(chars), group_len))


def normalize_code(raw: str, *, prefix: str = "") -> str:
    """Canonical form of a typed code: upper case, no separators, confusable letters mapped.

    The prefix is optional on input so users may paste just the random part.
    """
    cleaned = "".join(ch for ch in raw.upper() if ch.isalnum())
    if prefix and cleaned.startswith(prefix.upper()):
        cleaned = cleaned[len(prefix) :]
    return cleaned.translate(_CONFUSABLE)
