"""The three journals to their Discord channels through webhooks, in the background.

log_event writes a WebhookOutbox row next to the entry (logs.webhook_enqueue; no HTTP, so a
request never waits on Discord). The webhooks_deliver task posts pending lines in order,
several per message under Discord's 2000-character limit, with mentions disabled so user
text cannot ping anyone. A webhook that answers 404 (deleted) or 401/403 (bad token) is
disabled for its URL with one error journal entry; other failures back off and retry.

Each line is posted at most once. A message's rows are marked (committed) before it is sent
and deleted once Discord confirms it; a refusal (429, 5xx, connection refused) unmarks them
for a retry. Rows still marked at the next delivery belong to one that was killed or got no
answer after sending: the message may be in the channel, so instead of a possible second
copy the channel gets a note naming those journal entries (the journal keeps them all).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from core.crypto import digest
from core.discord.rest import (
    DiscordAuthError,
    DiscordBadRequest,
    DiscordClient,
    DiscordError,
    DiscordNotFound,
    DiscordRateLimited,
    DiscordUnconfirmed,
    discord_client,
)
from core.models import LogEntry
from core.models.webhooks import WebhookOutbox, WebhookState
from core.services.logs import log_event
from core.services.tasklock import lock_acquire, lock_release

log = logging.getLogger("zspb.webhooks")

JOURNALS: tuple[str, ...] = tuple(LogEntry.Category.values)
# Discord's limit is 2000 characters; the margin leaves room for the dropped-lines note.
CONTENT_MAX = 1900
DATA_MAX = 600
NAME_MAX = 80
ROWS_PER_READ = 200
# Beyond this many pending lines (a long outage), the oldest are dropped: they stay in the
# journal table and log files, and the channel gets a note saying how many were skipped.
BACKLOG_MAX = 2000
DELIVER_TIME_BUDGET = 45.0
RETRY_BASE = timedelta(seconds=30)
RETRY_MAX = timedelta(minutes=30)
LOCK_KEY = "zspb:webhooks:deliver-lock"

# Control characters become spaces: one entry is one line. Backticks would close the code
# spans user text is shown in; "@" gets a zero-width space so that even a message posted
# without allowed_mentions could not form @everyone or <@id>.
_CLEAN_MAP: dict[int, str] = {
    **dict.fromkeys(range(32), " "), 0x7F: " ", ord("`"): "\u02cb", ord("@"): "@\u200b"
}
_CLEAN = str.maketrans(_CLEAN_MAP)


def _clean(text: str, limit: int) -> str:
    text = text.translate(_CLEAN)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def journal_line(entry: LogEntry) -> str:
    """One entry as one line of Discord markdown; every user-supplied part in a code span."""
    when = timezone.localtime(entry.created_at).strftime("%Y-%m-%d %H:%M:%S")
    parts = [f"`{when}`", f"**{_clean(entry.action, 64)}**"]
    if entry.actor_name:
        parts.append(f"by `{_clean(entry.actor_name, NAME_MAX)}`")
    if entry.target_name:
        parts.append(f"on `{_clean(entry.target_name, NAME_MAX)}`")
    if entry.data:
        data = json.dumps(entry.data, ensure_ascii=False, sort_keys=True, default=str)
        parts.append(f"`{_clean(data, DATA_MAX)}`")
    return " ".join(parts)


def pack_lines(
    lines: list[tuple[int, str]], *, limit: int = CONTENT_MAX, first_note: str = ""
) -> list[tuple[str, list[int]]]:
    """Group (row id, line) pairs into messages of at most `limit` characters, in order."""
    messages: list[tuple[str, list[int]]] = []
    content, ids = first_note, list[int]()
    for row_id, line in lines:
        candidate = f"{content}\n{line}" if content else line
        if len(candidate) > limit and ids:
            messages.append((content, ids))
            candidate, ids = line, []
        content = candidate
        ids.append(row_id)
    if ids:
        messages.append((content, ids))
    return messages


@dataclass
class DeliveryReport:
    messages: int = 0
    lines: int = 0
    dropped: int = 0
    disabled: list[str] = field(default_factory=list)
    stopped: dict[str, str] = field(default_factory=dict)


def _state(journal: str, url: str) -> WebhookState:
    url_digest = digest(url, purpose="webhook")
    state, _ = WebhookState.objects.get_or_create(journal=journal,
                                                  defaults={"url_digest": url_digest})
    if state.url_digest != url_digest:
        # A new URL is a new webhook: whatever disabled or delayed the old one is over.
        state.url_digest = url_digest
        state.disabled_at = None
        state.disabled_reason = state.last_error = ""
        state.failures = 0
        state.not_before = timezone.now()
        state.save()
    return state


def _disable(state: WebhookState, exc: DiscordError, report: DeliveryReport) -> None:
    state.disabled_at = timezone.now()
    state.disabled_reason = exc.summary()[:200]
    state.save(update_fields=["disabled_at", "disabled_reason"])
    WebhookOutbox.objects.filter(journal=state.journal).delete()
    report.disabled.append(state.journal)
    log_event(
        category=LogEntry.Category.ERROR,
        action="webhook.disabled",
        data={"journal": state.journal, "status": exc.status, "code": exc.code,
              "hint": f"The {state.journal} journal webhook was deleted or its token is wrong: "
                      f"set a new WEBHOOK_{state.journal.upper()}_URL to resume posting."},
    )


def _back_off(state: WebhookState, exc: DiscordError) -> None:
    state.failures += 1
    state.last_error = exc.summary()[:200]
    state.not_before = timezone.now() + min(RETRY_BASE * 2 ** (state.failures - 1), RETRY_MAX)
    state.save(update_fields=["failures", "last_error", "not_before"])


def _trim_backlog(journal: str) -> int:
    pending = WebhookOutbox.objects.filter(journal=journal)
    excess = pending.count() - BACKLOG_MAX
    if excess <= 0:
        return 0
    oldest = list(pending.order_by("id").values_list("id", flat=True)[:excess])
    WebhookOutbox.objects.filter(pk__in=oldest).delete()
    return len(oldest)


def _interrupted(journal: str) -> tuple[str, list[int]]:
    """Rows a previous delivery marked as being posted but never confirmed: it was killed, or
    Discord gave no answer. They may be in the channel already, so they are not sent again
    (a line is posted at most once); a note names them instead (the note and those rows'
    ids are returned: the rows go once the note is posted), and the journal keeps them."""
    marked = list(WebhookOutbox.objects.filter(journal=journal, posting_at__isnull=False)
                  .order_by("entry_id").values_list("pk", "entry_id"))
    if not marked:
        return "", []
    log.warning("webhook %s: %d lines of an interrupted delivery are not sent again",
                journal, len(marked))
    note = (f"… a delivery was interrupted: {len(marked)} lines (journal entries "
            f"#{marked[0][1]} to #{marked[-1][1]}) may be missing above (see the journal in the "
            f"admin)")
    return note, [pk for pk, _entry in marked]


def _deliver_journal(
    client: DiscordClient, journal: str, url: str, report: DeliveryReport, *, deadline: float
) -> None:
    state = _state(journal, url)
    pending = WebhookOutbox.objects.filter(journal=journal)
    if state.disabled_at is not None:
        pending.delete()  # cannot be posted; the entries themselves stay in the journal
        report.stopped[journal] = "disabled"
        return
    if state.not_before > timezone.now():
        report.stopped[journal] = "backing off"
        return
    interrupted, noted = _interrupted(journal)
    notes = [interrupted]
    dropped = _trim_backlog(journal)
    report.dropped += dropped
    if dropped:
        notes.append(f"… {dropped} older lines were not posted (see the journal in the admin)")
    note = "\n".join(n for n in notes if n)
    label = LogEntry.Category(journal).label
    while time.monotonic() < deadline:
        rows = list(pending.filter(posting_at__isnull=True).select_related("entry")
                    .order_by("id")[:ROWS_PER_READ])
        if not rows and not note:
            return
        messages = pack_lines([(row.pk, journal_line(row.entry)) for row in rows],
                              first_note=note) or [(note, [])]
        note = ""
        for content, ids in messages:
            if time.monotonic() >= deadline:
                return
            if not _mark_posting(ids):
                report.stopped[journal] = "busy"
                return
            try:
                client.webhook_execute(url=url, content=content,
                                       username=f"ZalypaSPB · {label}", deadline=deadline)
            except (DiscordNotFound, DiscordAuthError) as exc:
                _disable(state, exc, report)
                return
            except DiscordBadRequest as exc:
                # Discord refuses this content; resending it cannot help. Drop, keep going.
                log.warning("webhook %s refused %d lines: %s", journal, len(ids), exc.summary())
                WebhookOutbox.objects.filter(pk__in=ids).delete()
                continue
            except DiscordRateLimited:
                _unmark_posting(ids)
                report.stopped[journal] = "rate limited"
                return
            except DiscordUnconfirmed as exc:
                # Possibly posted: the rows stay marked, and the next delivery notes them.
                _back_off(state, exc)
                report.stopped[journal] = "unconfirmed"
                return
            except DiscordError as exc:
                _unmark_posting(ids)
                _back_off(state, exc)
                report.stopped[journal] = "unavailable"
                return
            WebhookOutbox.objects.filter(pk__in=ids + noted).delete()
            noted = []
            report.messages += 1
            report.lines += len(ids)
            if state.failures:
                state.failures, state.last_error = 0, ""
            state.delivered_at = timezone.now()
            state.save(update_fields=["failures", "last_error", "delivered_at"])
        if not rows:
            return


def _mark_posting(ids: list[int]) -> bool:
    """Mark the message's rows as being posted, committed before the request is sent (mark
    before send: a kill after sending must not lead to a second post). False when another
    delivery (two takers of a lock; see tasklock) already holds some of them."""
    if not ids:
        return True
    now = timezone.now()
    marked = WebhookOutbox.objects.filter(pk__in=ids, posting_at__isnull=True).update(
        posting_at=now)
    if marked == len(ids):
        return True
    WebhookOutbox.objects.filter(pk__in=ids, posting_at=now).update(posting_at=None)
    log.warning("webhook rows %s are being posted by another delivery", ids[:5])
    return False


def _unmark_posting(ids: list[int]) -> None:
    """Discord refused the message (429, 5xx, connection refused): it was not posted."""
    if ids:
        WebhookOutbox.objects.filter(pk__in=ids).update(posting_at=None)


def webhooks_deliver(
    *, time_budget: float = DELIVER_TIME_BUDGET, client: DiscordClient | None = None
) -> DeliveryReport:
    """Post pending journal lines. One delivery at a time, so lines keep their order."""
    report = DeliveryReport()
    # At most django-q2's task timeout; a delivery killed outright is taken over at once on
    # the same host (tasklock), else when this runs out.
    task_timeout = settings.Q_CLUSTER.get("timeout", 60)
    ttl = max(int(time_budget) + 5, task_timeout if isinstance(task_timeout, int) else 60)
    token = lock_acquire(LOCK_KEY, ttl=ttl)
    if token is None:
        report.stopped["*"] = "busy"
        return report
    own = client is None
    client = client or discord_client()
    deadline = time.monotonic() + time_budget
    try:
        for journal in JOURNALS:
            url = settings.WEBHOOK_URLS.get(journal)
            if not url:
                # Unset: nothing is queued any more; whatever was queued before is dropped.
                WebhookOutbox.objects.filter(journal=journal).delete()
                continue
            _deliver_journal(client, journal, url, report, deadline=deadline)
    finally:
        if own:
            client.close()
        lock_release(LOCK_KEY, token)
    return report
