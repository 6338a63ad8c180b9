"""Reference licence client for loader authors: standard library (urllib) plus PyNaCl only.

Copy this file into a loader (it imports nothing from the site). It sends a fresh random
nonce, then trusts an answer (a refusal too) only if all of these hold:

1. the Ed25519 signature verifies with the public key pinned in the loader (never fetched at
   run time: whoever could tamper with the answer could tamper with a fetched key too);
2. the payload echoes the nonce sent (an old answer cannot be replayed);
3. the payload's timestamp is within `max_skew` seconds of the local clock;
4. the payload is version 2 and names what was asked: the product, and the digests of the HWID
   and of the key or account sent (an answer issued for another machine, product or licence,
   e.g. passed on by a relay from one bound licence, is refused).

    result = check_license("https://example.org", product="loader", hwid=machine_id(),
                           key="ZSPB-XXXXX-XXXXX-XXXXX-XXXXX", public_key_b64=PINNED_KEY)
    if not result.valid:
        refuse_to_start()
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

CHECK_PATH = "/api/license/check"
DEFAULT_TIMEOUT = 15.0
PAYLOAD_VERSION = 2


class LicenseError(Exception):
    """Base class: no trustworthy answer was obtained."""


class LicenseVerificationError(LicenseError):
    """The answer is forged, tampered with, replayed or stale: treat as hostile."""


class LicenseServerError(LicenseError):
    """The server did not answer with a signed payload (throttled, bad request, down)."""

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class Opener(Protocol):
    def open(self, fullurl: urllib.request.Request, data: bytes | None = None,
             timeout: float | None = ...) -> Any: ...


@dataclass(frozen=True)
class LicenseResult:
    valid: bool
    nonce: str
    timestamp: int
    product: str | None = None
    expires_at: datetime | None = None
    username: str | None = None


def _now() -> float:
    return time.time()


def _post(opener: Opener, url: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 (the caller chooses the server's URL)
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with opener.open(request, timeout=timeout) as response:
            raw = response.read(64 * 1024)
    except urllib.error.HTTPError as exc:
        retry = exc.headers.get("Retry-After") if exc.headers else None
        raise LicenseServerError(f"licence server answered HTTP {exc.code}", status=exc.code,
                                 retry_after=int(retry) if retry and retry.isdigit() else None
                                 ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise LicenseServerError(f"licence server unreachable: {exc}") from None
    try:
        answer = json.loads(raw)
    except ValueError:
        raise LicenseServerError("licence server sent something that is not JSON") from None
    if not isinstance(answer, dict):
        raise LicenseServerError("licence server sent an unexpected answer")
    return answer


def binding_digest(kind: str, value: str) -> str:
    """SHA-256 hex of "zspb-<kind>-v1:" + value (UTF-8), kind "hwid", "key" or "account",
    value exactly as sent: how a signed answer names the machine and licence it is for."""
    return hashlib.sha256(f"zspb-{kind}-v1:{value}".encode("utf-8", "surrogatepass")).hexdigest()


def _same(signed: Any, wanted: str) -> bool:
    return isinstance(signed, str) and hmac.compare_digest(signed.encode(), wanted.encode())


def verify_answer(answer: dict[str, Any], *, public_key_b64: str, nonce: str, product: str,
                  hwid: str, key: str | None = None, username: str | None = None,
                  max_skew: float = 300) -> dict[str, Any]:
    """Return the decoded payload of a signed answer to the request made with these `product`,
    `hwid`, `nonce` and `key` (or `username`), or raise LicenseVerificationError."""
    try:
        payload = base64.b64decode(str(answer["payload"]), validate=True)
        signature = base64.b64decode(str(answer["signature"]), validate=True)
        verify_key = VerifyKey(base64.b64decode(public_key_b64, validate=True))
    except (KeyError, binascii.Error, ValueError, TypeError):
        raise LicenseVerificationError("the answer is not a signed licence answer") from None
    try:
        verify_key.verify(payload, signature)
    except BadSignatureError:
        raise LicenseVerificationError("bad signature: not signed by the pinned key") from None
    # Only bytes that passed the signature check are parsed.
    data = json.loads(payload)
    if not isinstance(data, dict):
        raise LicenseVerificationError("the signed payload is not an object")
    if not _same(data.get("nonce"), nonce):
        raise LicenseVerificationError("nonce mismatch: the answer is not for this request")
    timestamp = data.get("timestamp")
    if type(timestamp) is not int or abs(_now() - timestamp) > max_skew:
        raise LicenseVerificationError("stale answer: timestamp outside the allowed skew")
    if type(data.get("v")) is not int or data["v"] != PAYLOAD_VERSION:
        raise LicenseVerificationError("unknown payload version")
    if type(data.get("valid")) is not bool:
        raise LicenseVerificationError("the signed payload has no verdict")
    if not _same(data.get("product"), product):
        raise LicenseVerificationError("the answer is for another product")
    if not _same(data.get("hwid_digest"), binding_digest("hwid", hwid)):
        raise LicenseVerificationError("the answer is for another machine")
    if key is not None:
        bound, absent = ("key_digest", binding_digest("key", key)), "account_digest"
    else:
        bound, absent = ("account_digest", binding_digest("account", username or "")), "key_digest"
    if not _same(data.get(bound[0]), bound[1]) or absent in data:
        raise LicenseVerificationError("the answer is for another licence")
    return data


def check_license(
    base_url: str,
    *,
    product: str,
    hwid: str,
    key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    public_key_b64: str,
    max_skew: float = 300,
    opener: Opener | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> LicenseResult:
    """Ask `base_url` (the site's root, e.g. https://example.org) whether the licence holds.

    Pass either `key`, or `username` and `password`. Returns a verified result (whose `valid`
    may be False); raises LicenseVerificationError or LicenseServerError otherwise.
    """
    by_key = key is not None and username is None and password is None
    by_account = key is None and username is not None and password is not None
    if not (by_key or by_account):
        raise ValueError("pass either key, or username and password")
    if username is not None:
        username = username.strip()  # the server strips it; the digest is of what it sees
    nonce = secrets.token_hex(16)
    body: dict[str, Any] = {"product": product, "hwid": hwid, "nonce": nonce}
    if by_key:
        body["key"] = key
    else:
        body["username"] = username
        body["password"] = password
    url = base_url.rstrip("/") + CHECK_PATH
    answer = _post(opener or urllib.request.build_opener(), url, body, timeout)
    data = verify_answer(answer, public_key_b64=public_key_b64, nonce=nonce, product=product,
                         hwid=hwid, key=key, username=username, max_skew=max_skew)
    if not data["valid"]:
        return LicenseResult(valid=False, nonce=nonce, timestamp=data["timestamp"])
    try:
        expires_at = datetime.fromisoformat(str(data["expires_at"]))
    except (KeyError, ValueError):
        raise LicenseVerificationError("the signed payload has no valid expiry") from None
    return LicenseResult(valid=True, nonce=nonce, timestamp=data["timestamp"], product=product,
                         expires_at=expires_at, username=str(data.get("username", "")))
