"""core.sessions: Django's database sessions read by one precompiled statement, with Django's
behaviour for a found, an expired and an unknown session."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.sessions import SessionStore

pytestmark = pytest.mark.django_db


def test_a_saved_session_reads_back_in_one_query() -> None:
    store = SessionStore()
    store["answer"] = 42
    store.save()
    with CaptureQueriesContext(connection) as queries:
        again = SessionStore(store.session_key)
        assert again["answer"] == 42
    assert len(queries) == 1
    assert again.session_key == store.session_key


def test_an_expired_session_is_empty_and_gets_a_new_key_on_save() -> None:
    store = SessionStore()
    store["answer"] = 42
    store.save()
    Session.objects.filter(session_key=store.session_key).update(
        expire_date=timezone.now() - timedelta(seconds=1))
    stale = SessionStore(store.session_key)
    assert stale.get("answer") is None
    assert stale.session_key is None  # as Django's own store: never resurrects the old key
    stale["answer"] = 7
    stale.save()
    assert stale.session_key != store.session_key


@pytest.mark.parametrize("key", ["unknown-session-key-0000000000000", None])
def test_an_unknown_or_missing_key_is_an_empty_session(key: str | None) -> None:
    assert dict(SessionStore(key).items()) == {}
