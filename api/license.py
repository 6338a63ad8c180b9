"""The loader's licence check: anonymous, signed with Ed25519, one answer shape for every
refusal. The reference client (api/license_client.py) shows how a loader verifies it."""

from __future__ import annotations

from typing import Annotated, Literal

from django.http import HttpRequest
from ninja import Router, Schema
from pydantic import ConfigDict, StringConstraints, model_validator

from api.errors import ERRORS
from api.net import client_ip
from core.selectors.licensing import ALGORITHM, license_public_key
from core.services.licensing import LicenseAnswer, license_check

router = Router(tags=["license"])

ProductSlug = Annotated[str, StringConstraints(min_length=1, max_length=50,
                                               pattern=r"^[-a-zA-Z0-9_]+$")]
Hwid = Annotated[str, StringConstraints(min_length=1, max_length=128)]
# Anything typed, control characters included: a garbage key or password gets the same signed
# "not valid" as any other failure instead of a validation error that would tell them apart.
LicenseKeyText = Annotated[str, StringConstraints(min_length=1, max_length=64)]
LicensePassword = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Nonce = Annotated[str, StringConstraints(min_length=16, max_length=64)]
# Django's own username rules (length and characters): accounts created from the shell may
# exceed the sign-up limit; control characters such as NUL never reach the database.
AccountName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                               max_length=150, pattern=r"^[\w.@+-]+$")]


class LicenseCheckIn(Schema):
    model_config = ConfigDict(extra="forbid")

    product: ProductSlug
    hwid: Hwid
    nonce: Nonce
    key: LicenseKeyText | None = None
    username: AccountName | None = None
    password: LicensePassword | None = None

    @model_validator(mode="after")
    def _one_mode(self) -> LicenseCheckIn:
        by_key = self.key is not None and self.username is None and self.password is None
        by_account = self.key is None and self.username is not None and self.password is not None
        if not (by_key or by_account):
            raise ValueError("send either key, or username and password")
        return self


class LicenseAnswerOut(Schema):
    payload: str
    signature: str


class PublicKeyOut(Schema):
    algorithm: Literal["Ed25519"]
    public_key: str


@router.post("/check", auth=None, response={200: LicenseAnswerOut, **ERRORS},
             operation_id="license_check",
             summary="Check a licence by key or account for a machine; signed answer",
             description="Always 200 with a signed payload unless throttled (429) or malformed "
                         "(422). `valid` is false for every refusal reason alike.")
def check(request: HttpRequest, body: LicenseCheckIn) -> LicenseAnswer:
    return license_check(request=request, ip=client_ip(request), product=body.product,
                         hwid=body.hwid, nonce=body.nonce, key=body.key,
                         username=body.username, password=body.password)


@router.get("/public-key", auth=None, response={200: PublicKeyOut, **ERRORS},
            operation_id="license_public_key",
            summary="The Ed25519 public key that verifies licence answers")
def public_key(request: HttpRequest) -> PublicKeyOut:
    return PublicKeyOut(algorithm=ALGORITHM, public_key=license_public_key())
