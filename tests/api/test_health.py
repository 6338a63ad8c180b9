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
