"""Role sync: Discord roles converge to the site's wanted roles.

Four parts: the outbox (outbox.py: every change that affects a member's wanted roles writes a
RoleSyncRequest row in its own transaction), the drain (drain.py: the one writer of Discord
roles, applying only the difference on managed roles), the periodic reconcile (reconcile.py:
expiries, every linked member, members no account is linked to) and the login check
(login.py). Callers import from this package.
"""

from core.services.rolesync.drain import DrainReport, role_diff, role_sync_drain
from core.services.rolesync.login import member_roles_check
from core.services.rolesync.outbox import drain_soon, role_sync_request, unlinked_ids
from core.services.rolesync.reconcile import (
    OrphanReport,
    member_roles_strip,
    member_strip_soon,
    role_sync_expired,
    role_sync_request_members,
    roles_reconcile_all,
    roles_strip_orphans,
)

__all__ = [
    "DrainReport",
    "OrphanReport",
    "drain_soon",
    "member_roles_check",
    "member_roles_strip",
    "member_strip_soon",
    "role_diff",
    "role_sync_drain",
    "role_sync_expired",
    "role_sync_request",
    "role_sync_request_members",
    "roles_reconcile_all",
    "roles_strip_orphans",
    "unlinked_ids",
]
