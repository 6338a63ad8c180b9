"""Types shared by several routers: strict, with length limits on every string.

Strings refuse control characters in the schema itself (PostgreSQL cannot store NUL, and no
form field needs them), so what the schema promises is exactly what is accepted: the limits
are the services' own (username rules, code lengths, password length), not looser stand-ins.
"""

from __future__ import annotations

from typing import Annotated, Any

from django.contrib.auth.password_validation import (
    MinimumLengthValidator,
    get_default_password_validators,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from ninja import Schema
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
)

from core.crypto import ALPHABET
from core.services.discord_link import LINK_CODE_GROUP_LEN, LINK_CODE_GROUPS
from core.services.invites import INVITE_BODY_LEN, INVITE_PREFIX
from core.services.users import USERNAME_MAX, USERNAME_MIN

_CONTROL = r"\x00-\x1f\x7f-\x9f"
_PLAIN = rf"[^{_CONTROL}]"


class InputSchema(Schema):
    # Python's regex semantics, as the services use: `\w` is exactly str.isalnum() plus "_"
    # (the default Rust engine's `\w` differs on a few Unicode classes), and it is also what
    # schema-driven generators such as schemathesis use to read the patterns.
    model_config = ConfigDict(regex_engine="python-re")


def _whole_number(value: Any) -> Any:
    # JSON has one number type: 1.0 is the integer 1 (JSON Schema says so too), while true,
    # "1" and 1.5 stay refused by the strict integer check that follows.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# A JSON integer in a body: whole-number floats (1.0) count, booleans and strings do not.
# Placed after the bounds, as in Annotated[StrictInt, Field(ge=..., le=...), WHOLE], so that
# the JSON schema still shows them as minimum and maximum.
WHOLE = BeforeValidator(_whole_number)
Id = Annotated[StrictInt, Field(ge=1, le=2**63 - 1), WHOLE]
# Path segments are text by nature; they must still parse as a positive 64-bit integer.
PathId = Annotated[int, Field(ge=1, le=2**63 - 1)]
Code = Annotated[str, StringConstraints(pattern=rf"^{_PLAIN}+$", min_length=1, max_length=64)]


def _typed_code(*, body_len: int, prefix: str = "") -> str:
    """A code as a person types or pastes it: exactly `body_len` characters of the code
    alphabet (any case; O, I and L read as 0 and 1, as core.crypto.normalize_code does),
    after an optional prefix, with at most one dash or space between characters."""
    letters = set(ALPHABET) | {"O", "I", "L"}
    allowed = "".join(sorted(letters | {ch.lower() for ch in letters}))
    head = "".join(f"[{ch.upper()}{ch.lower()}][- ]?" for ch in prefix)
    optional_prefix = f"(?:{head})?" if prefix else ""
    return rf"^{optional_prefix}(?:[{allowed}][- ]?){{{body_len - 1}}}[{allowed}]$"


# The code from the bot's /code: XXXX-XXXX.
LinkCode = Annotated[str, StringConstraints(
    pattern=_typed_code(body_len=LINK_CODE_GROUPS * LINK_CODE_GROUP_LEN), min_length=8,
    max_length=15)]
# An invite code: INV-XXXXX-XXXXX-XXXXX-XXXXX, the prefix optional.
InviteCode = Annotated[str, StringConstraints(
    pattern=_typed_code(body_len=INVITE_BODY_LEN, prefix=INVITE_PREFIX),
    min_length=INVITE_BODY_LEN, max_length=45)]
# Logging in: Django's username rules (accounts made from the shell may exceed the sign-up
# limits below), never control characters.
Username = Annotated[str, StringConstraints(pattern=r"^[\w.@+-]+$", min_length=1,
                                            max_length=150)]
# Signing up: the service's rules (core.services.users: letters, digits, ".", "_", "-").
NewUsername = Annotated[str, StringConstraints(pattern=r"^[\w.-]+$", min_length=USERNAME_MIN,
                                               max_length=USERNAME_MAX)]
Password = Annotated[str, StringConstraints(pattern=r"^[^\x00]+$", min_length=1, max_length=128)]


def _password_min_length() -> int:
    lengths = [validator.min_length for validator in get_default_password_validators()
               if isinstance(validator, MinimumLengthValidator)]
    return max(lengths, default=1)


# A new password: AUTH_PASSWORD_VALIDATORS' minimum length and not only digits. The other
# validators (common passwords, likeness to the username) cannot be written as a schema.
NewPassword = Annotated[str, StringConstraints(
    pattern=r"^[^\x00]*[^\x00\d][^\x00]*$", min_length=_password_min_length(), max_length=128)]


def _django_email(value: str) -> str:
    # The service's own check (Django's EmailValidator), so a schema-valid address is one the
    # service takes; the schema says `format: email`, which is what that validator implements.
    if value:
        try:
            validate_email(value)
        except DjangoValidationError:
            raise ValueError("Enter a valid e-mail address.") from None
    return value


# Optional on sign-up: empty, or an address.
Email = Annotated[
    str, StringConstraints(max_length=254), AfterValidator(_django_email),
    WithJsonSchema({"type": "string", "maxLength": 254,
                    "anyOf": [{"format": "email"}, {"maxLength": 0}]}),
]
# A product's slug (SlugField) in a path.
Slug = Annotated[str, StringConstraints(pattern=r"^[-a-zA-Z0-9_]+$", min_length=1,
                                        max_length=50)]
