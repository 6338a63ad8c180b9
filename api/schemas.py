"""Types shared by several routers: strict, with length limits on every string."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictInt, StringConstraints

# Strict in bodies: JSON `false`, `1.0` or "12" is not an id.
Id = Annotated[StrictInt, Field(ge=1, le=2**63 - 1)]
# Path segments are text by nature; they must still parse as a positive 64-bit integer.
PathId = Annotated[int, Field(ge=1, le=2**63 - 1)]
# Discord snowflakes travel as strings in Discord's own API; accept digits only.
DiscordId = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,19}$")]
Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Username = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=254)]
