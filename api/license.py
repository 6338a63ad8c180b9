"""The loader's licence check: anonymous, signed with Ed25519, one answer shape for every
refusal. The reference client (api/license_client.py) shows how a loader verifies it."""

from __future__ import annotations

from typing import Annotated, Literal

from django.http import HttpRequest
from ninja import Body, Router, Schema
from pydantic import ConfigDict, GetJsonSchemaHandler, StringConstraints
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

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


class _LicenseCheckBase(Schema):
    model_config = ConfigDict(extra="forbid")

    product: ProductSlug
    hwid: Hwid
    nonce: Nonce


class LicenseCheckByKeyIn(_LicenseCheckBase):
    key: LicenseKeyText


class LicenseCheckByAccountIn(_LicenseCheckBase):
    username: AccountName
    password: LicensePassword


class _OneOf:
    """Publishes a union as `oneOf`: pydantic writes `anyOf`, but with no extra properties
    allowed exactly one mode matches any acceptable body, and `oneOf` says so to clients and
    fuzzers (a body with both modes or neither matches none and answers 422)."""

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        if "anyOf" in schema:
            schema["oneOf"] = schema.pop("anyOf")
        return schema


LicenseCheckIn = Annotated[LicenseCheckByKeyIn | LicenseCheckByAccountIn, _OneOf, Body()]


class LicenseAnswerOut(Schema):
    payload: str
    signature: str


class PublicKeyOut(Schema):
    algorithm: Literal["Ed25519"]
    public_key: str


@router.post("/check", auth=None, response={200: LicenseAnswerOut, **ERRORS},
             operation_id="license_check",
             summary="Check a licence by key or account for a machine; signed answer",
             description="The body is one of two modes: a key, or a username and a password; "
                         "both or neither is malformed (422). Always 200 with a signed payload "
                         "unless throttled (429) or malformed. The payload names the product, "
                         "the HWID and key or account digests and the nonce; `valid` is false "
                         "for every refusal reason alike.")
def check(request: HttpRequest, body: LicenseCheckIn) -> LicenseAnswer:
    if isinstance(body, LicenseCheckByKeyIn):
        return license_check(request=request, ip=client_ip(request), product=body.product,
                             hwid=body.hwid, nonce=body.nonce, key=body.key)
    return license_check(request=request, ip=client_ip(request), product=body.product,
                         hwid=body.hwid, nonce=body.nonce, username=body.username,
                         password=body.password)


@router.get("/public-key", auth=None, response={200: PublicKeyOut, **ERRORS},
            operation_id="license_public_key",
            summary="The Ed25519 public key that verifies licence answers")
def public_key(request: HttpRequest) -> PublicKeyOut:
    return PublicKeyOut(algorithm=ALGORITHM, public_key=license_public_key())
