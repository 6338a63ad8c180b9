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
