"""The one entry point for the three journals (user actions, moderation, system errors)."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from core.crypto import digest
from core.models import LogEntry, User
from core.models.webhooks import WebhookOutbox
from core.requestid import request_id_current

Category = LogEntry.Category


def webhook_wanted(*, category: str) -> bool:
    return bool(settings.WEBHOOK_URLS.get(category))


def webhook_enqueue(*, entry: LogEntry) -> None:
    """Queue the entry for its journal's webhook (core.services.webhooks posts it later);
    nothing when the journal has no URL."""
    if webhook_wanted(category=entry.category):
        WebhookOutbox.objects.create(entry=entry, journal=entry.category,
                                     created_at=entry.created_at)


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


ERROR_DEDUP_SECONDS = 300
_errors_log = logging.getLogger("zspb.errors")


def error_journal(
    *,
    action: str,
    place: str,
    error: BaseException | str,
    request_id: str | None = None,
    data: dict[str, Any] | None = None,
    ip: str | None = None,
) -> LogEntry | None:
    """One system-error entry for an unhandled exception, at most one per place and error type
    in ERROR_DEDUP_SECONDS; None when deduplicated or when the journal itself failed.

    Never raises: it runs while something has already gone wrong, and the database or the
    cache may be what is down. Without a cache every error is journaled.
    """
    error_type = error if isinstance(error, str) else type(error).__name__
    request_id = request_id or request_id_current() or ""
    key = f"zspb:error-seen:{digest(f'{place}|{error_type}', purpose='error')[:32]}"
    try:
        first = bool(cache.add(key, 1, timeout=ERROR_DEDUP_SECONDS))
    except Exception:  # (the cache may be down; journal anyway)
        first = True
    if not first:
        _errors_log.info("%s %s in %s again (journaled within the last %ds) request_id=%s",
                         action, error_type, place, ERROR_DEDUP_SECONDS, request_id or "-")
        return None
    try:
        return log_event(category=Category.ERROR, action=action, ip=ip,
                         data={**(data or {}), "place": place[:200], "error": error_type[:100],
                               "request_id": request_id})
    except Exception:  # (the journal itself may be what is down)
        _errors_log.exception("could not journal %s %s in %s request_id=%s", action,
                              error_type, place, request_id or "-")
        return None
