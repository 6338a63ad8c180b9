"""The one entry point for the three journals (user actions, moderation, system errors)."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from core.crypto import digest
from core.models import LogEntry, User
from core.services.webhooks import webhook_enqueue, webhook_wanted

Category = LogEntry.Category


def log_event(
    *,
    category: str,
    action: str,
    actor: User | None = None,
    target: User | None = None,
    data: dict[str, Any] | None = None,
    ip: str | None = None,
) -> LogEntry:
    if category not in Category.values:
        raise ValueError(f"unknown journal {category!r}")
    entry = LogEntry(
        category=category,
        action=action[:64],
        actor=actor,
        target=target,
        actor_name=actor.get_username() if actor else "",
        target_name=target.get_username() if target else "",
        data=data or {},
        ip_digest=digest(ip, purpose="ip") if ip else "",
        ip=ip or "",
    )
    if webhook_wanted(category=category):
        # The line for Discord is queued in the entry's transaction (posted later by a task;
        # no HTTP here): it exists exactly when the entry does.
        with transaction.atomic():
            entry.save(force_insert=True)
            webhook_enqueue(entry=entry)
    else:
        entry.save(force_insert=True)
    level = logging.ERROR if category == Category.ERROR else logging.INFO
    logging.getLogger(f"zspb.journal.{category}").log(
        level,
        "%s actor=%s target=%s data=%s",
        action,
        entry.actor_name or "-",
        entry.target_name or "-",
        entry.data,
    )
    return entry
