"""Admin registrations on the staff site (admin.site is staff.site.StaffAdminSite).

One module per model group; importing them registers their ModelAdmins.
"""

from __future__ import annotations

from staff import (  # noqa: F401  (registers them)
    bans,
    invites,
    journal,
    keys,
    licence_checks,
    products,
    releases,
    roles,
    subscriptions,
    system,
    users,
)
