"""Admin registrations; one module per model group under staff/ as the admin grows."""

from __future__ import annotations

from staff import accounts, catalogue, journal  # noqa: F401  (registers the ModelAdmins)
