"""Types shared by several routers: strict, with length limits on every string.

Strings refuse control characters in the schema itself (PostgreSQL cannot store NUL, and no
form field needs them), so what the schema promises is exactly what is accepted.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictInt, StringConstraints

_PLAIN = r"[^\x00-\x1f\x7f-\x9f]"

# Strict in bodies: JSON `false`, `1.0` or "12" is not an id.
Id = Annotated[StrictInt, Field(ge=1, le=2**63 - 1)]
# Path segments are text by nature; they must still parse as a positive 64-bit integer.
PathId = Annotated[int, Field(ge=1, le=2**63 - 1)]
Code = Annotated[str, StringConstraints(pattern=rf"^{_PLAIN}+$", min_length=1, max_length=64)]
# Django's username characters; the service applies the site's stricter rules on registration.
Username = Annotated[str, StringConstraints(pattern=r"^[\w.@+-]+$", min_length=1,
                                            max_length=32)]
Password = Annotated[str, StringConstraints(pattern=r"^[^\x00]+$", min_length=1, max_length=128)]
Email = Annotated[str, StringConstraints(pattern=rf"^{_PLAIN}*$", max_length=254)]
# A product's slug (SlugField) in a path.
Slug = Annotated[str, StringConstraints(pattern=r"^[-a-zA-Z0-9_]+$", min_length=1,
                                        max_length=50)]
