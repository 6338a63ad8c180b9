"""Login lock-outs: staff who manage users lift them (journaled, rank rules), and old access
logs are trimmed by a scheduled job."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings
from django.test import Client
from django.utils import timezone

from core.errors import PermissionDenied, RankViolation
from core.models import LogEntry, User
from core.schedules import SCHEDULES
from core.services.lockouts import ACCESS_LOG_RETENTION_DAYS, lockout_lift
from core.tasks import trim_access_logs
from tests.factories import UserFactory

ATTEMPTS = "/admin/axes/accessattempt/"
PASSWORD = "correct horse battery"


def attempt(username: str, ip: str = "198.51.100.7") -> AccessAttempt:
    return AccessAttempt.objects.create(username=username, ip_address=ip, user_agent="ua",
                                        failures_since_start=settings.AXES_FAILURE_LIMIT)


def lift(client: Client, *attempts: AccessAttempt) -> Any:
    return client.post(ATTEMPTS, {"action": "lift_lockouts",
                                  "_selected_action": [str(a.pk) for a in attempts]},
                       follow=True)


def api_login(username: str, password: str) -> int:
    client = Client(REMOTE_ADDR="203.0.113.9")
    client.get("/api/auth/csrf")
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    return client.post("/api/auth/login", json.dumps({"username": username,
                                                      "password": password}),
                       content_type="application/json", HTTP_X_CSRFTOKEN=token).status_code


@pytest.mark.django_db
def test_moderator_lifts_a_real_lockout(staff_client: Any, member: User) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        api_login("member", "wrong password")
    assert api_login("member", PASSWORD) == 429  # locked out, even with the right password
    other = attempt("someone-else")
    locked = AccessAttempt.objects.get(username="member")
    client = staff_client("moderator")
    response = lift(client, locked)
    assert "Lifted 1 lock-outs." in response.content.decode()
    assert not AccessAttempt.objects.filter(username="member").exists()
    assert AccessAttempt.objects.filter(pk=other.pk).exists()
    entry = LogEntry.objects.get(action="lockout.lift")
    assert entry.category == "moderation" and entry.actor == client.user
    assert entry.target == member and entry.data["username"] == "member"
    assert api_login("member", PASSWORD) == 200


@pytest.mark.django_db
def test_rank_rules_apply_to_lockouts_of_staff(staff_client: Any, roles: Any) -> None:
    UserFactory.create(username="boss", role=roles["admin"])
    boss_lock, stranger_lock = attempt("boss"), attempt("no-such-account")
    client = staff_client("moderator")
    response = lift(client, boss_lock, stranger_lock)
    assert "ranked below your own" in response.content.decode()
    assert AccessAttempt.objects.filter(pk=boss_lock.pk).exists()
    assert not AccessAttempt.objects.filter(pk=stranger_lock.pk).exists()


@pytest.mark.django_db
def test_support_may_not_lift(staff_client: Any) -> None:
    locked = attempt("member")
    client = staff_client("support")
    assert client.get(ATTEMPTS).status_code == 403
    lift(client, locked)
    assert AccessAttempt.objects.filter(pk=locked.pk).exists()


def test_service_needs_manage_users(db: None, support: User) -> None:
    locked = attempt("member")
    with pytest.raises(PermissionDenied):
        lockout_lift(actor=support, attempt_ids=[locked.pk])
    assert AccessAttempt.objects.filter(pk=locked.pk).exists()


def test_own_lockout_needs_someone_else(db: None, moderator: User) -> None:
    locked = attempt("moderator")
    with pytest.raises(RankViolation):
        lockout_lift(actor=moderator, attempt_ids=[locked.pk])


def test_old_access_logs_are_trimmed_by_a_scheduled_job(db: None) -> None:
    assert any(spec.func == "core.tasks.trim_access_logs" for spec in SCHEDULES)
    old = timezone.now() - timedelta(days=ACCESS_LOG_RETENTION_DAYS + 1)
    recent = timezone.now() - timedelta(days=ACCESS_LOG_RETENTION_DAYS - 1)
    for model in (AccessLog, AccessFailureLog):
        for moment in (old, recent):
            row = model.objects.create(username="x", ip_address="198.51.100.7",
                                       user_agent="ua")
            model.objects.filter(pk=row.pk).update(attempt_time=moment)  # auto_now_add
    assert trim_access_logs() == 2
    for model in (AccessLog, AccessFailureLog):
        assert list(model.objects.values_list("attempt_time", flat=True)) == [recent]
