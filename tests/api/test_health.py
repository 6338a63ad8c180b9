from __future__ import annotations

import pytest


@pytest.mark.django_db
def test_health(client):
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["database"] and body["cache"] and body["queue_ok"]


@pytest.mark.django_db
def test_admin_login_page(client):
    assert client.get("/admin/login/").status_code == 200


@pytest.mark.django_db
def test_health_turns_503_when_the_queue_backs_up(client, settings):
    from django_q.models import OrmQ

    settings.QUEUE_WARN_THRESHOLD = 2
    for i in range(3):
        OrmQ.objects.create(key="zspb", payload=f"p{i}", lock=None)
    response = client.get("/api/health")
    assert response.status_code == 503
    assert response.json()["queue_length"] == 3 and not response.json()["queue_ok"]


@pytest.mark.django_db
def test_health_turns_503_when_the_cache_is_down(client, monkeypatch):
    from django.core.cache import cache

    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "set", broken)
    response = client.get("/api/health")
    assert response.status_code == 503 and response.json()["cache"] is False


def _break_cache(monkeypatch):
    from django.core.cache import cache

    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "set", broken)
    monkeypatch.setattr(cache, "get", broken)


def _break_database(monkeypatch):
    from django.db import DatabaseError, connection

    def broken(*args, **kwargs):
        raise DatabaseError("database down")

    monkeypatch.setattr(connection, "cursor", broken)


@pytest.mark.django_db
def test_live_answers_without_touching_database_or_cache(client, monkeypatch,
                                                         django_assert_num_queries):
    _break_cache(monkeypatch)
    with django_assert_num_queries(0):
        response = client.get("/api/health/live")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_live_stays_200_when_database_is_down(client, monkeypatch):
    _break_database(monkeypatch)
    assert client.get("/api/health/live").status_code == 200


@pytest.mark.django_db
def test_ready_reports_everything(client, settings):
    settings.QUEUE_WARN_THRESHOLD = 7
    response = client.get("/api/health/ready")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "degraded": False, "database": True,
                               "cache": True, "queue_length": 0, "queue_ok": True,
                               "queue_warn_threshold": 7}


@pytest.mark.django_db
def test_ready_stays_200_on_a_queue_backlog_that_health_reports_as_503(client, settings):
    from django_q.models import OrmQ

    settings.QUEUE_WARN_THRESHOLD = 2
    for i in range(3):
        OrmQ.objects.create(key="zspb", payload=f"p{i}", lock=None)
    ready = client.get("/api/health/ready")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    assert ready.json()["queue_length"] == 3 and ready.json()["queue_ok"] is False
    assert client.get("/api/health").status_code == 503


@pytest.mark.django_db
def test_ready_stays_200_but_degraded_when_the_cache_is_down(client, monkeypatch):
    # The cache falls back to a per-process one and the site keeps serving: a balancer must
    # not take every node out over it. Monitoring still sees it in /api/health.
    _break_cache(monkeypatch)
    response = client.get("/api/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["ready"] is True and body["degraded"] is True and body["cache"] is False
    assert body["database"] is True
    assert client.get("/api/health").status_code == 503


@pytest.mark.django_db
def test_ready_is_503_when_the_database_is_down(client, monkeypatch):
    _break_database(monkeypatch)
    response = client.get("/api/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["database"] is False and body["ready"] is False and body["queue_length"] == -1
    assert body["degraded"] is False  # the cache answers: not ready is the whole story


@pytest.mark.django_db
def test_ready_is_503_when_database_and_cache_are_down(client, monkeypatch):
    _break_database(monkeypatch)
    _break_cache(monkeypatch)
    response = client.get("/api/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False and body["database"] is False and body["cache"] is False
