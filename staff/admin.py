"""Admin registrations on the staff site (admin.site is staff.site.StaffAdminSite).

One module per task; importing them registers their ModelAdmins.
"""

from __future__ import annotations

from staff import accounts, catalogue, journal, roles, system  # noqa: F401  (registers them)
