from __future__ import annotations

import logging

import pytest

from core.crypto import digest
from core.models import LogEntry
from core.services.logs import log_event


@pytest.mark.django_db
def test_log_event_writes_all_fields(member, moderator, caplog):
    with caplog.at_level(logging.INFO, logger="zspb.journal.moderation"):
        entry = log_event(category="moderation", action="user.ban", actor=moderator,
                          target=member, data={"reason": "spam"}, ip="2001:db8::1")
    stored = LogEntry.objects.get(pk=entry.pk)
    assert (stored.actor_name, stored.target_name) == ("moderator", "member")
    assert stored.ip == "2001:db8::1" and stored.ip_digest == digest("2001:db8::1", purpose="ip")
    assert "user.ban" in caplog.text


@pytest.mark.django_db
def test_names_survive_deletion(member):
    entry = log_event(category="user", action="x", actor=member)
    member.delete()
    entry.refresh_from_db()
    assert entry.actor is None and entry.actor_name == "member"


@pytest.mark.django_db
def test_unknown_journal_rejected():
    with pytest.raises(ValueError, match="unknown journal"):
        log_event(category="gossip", action="x")
