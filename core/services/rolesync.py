"""The role-sync outbox: every change that affects a member's wanted Discord roles writes here.

Draining (applying the differences through Discord) is the background task's job.
"""

from __future__ import annotations

from django.utils import timezone

from core.models import RoleSyncRequest

REASON_MAX = 64


def role_sync_request(*, user_id: int, reason: str) -> None:
    """Queue a role sync for the user, coalescing with any pending request.

    One INSERT ... ON CONFLICT (user) DO UPDATE: concurrent callers cannot create a second
    row or fail on the unique constraint, and the statement joins the caller's transaction,
    so the request commits (or rolls back) with the change that caused it. A new request is
    due at once: whatever held the old one back (an unknown member, a failed call) may be over.
    """
    now = timezone.now()
    RoleSyncRequest.objects.bulk_create(
        [RoleSyncRequest(user_id=user_id, reason=reason[:REASON_MAX], requested_at=now,
                         not_before=now)],
        update_conflicts=True,
        unique_fields=["user"],
        update_fields=["reason", "requested_at", "not_before"],
    )
