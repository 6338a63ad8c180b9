from __future__ import annotations

import pytest


@pytest.mark.django_db
def test_docs_are_staff_only_in_production(client, member, support, settings):
    settings.DEBUG = False
    assert client.get("/api/openapi.json").status_code == 200
    response = client.get("/api/docs")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client.force_login(member)
    assert client.get("/api/docs").status_code == 302
    client.force_login(support)
    assert client.get("/api/docs").status_code == 200


@pytest.mark.django_db
def test_docs_open_in_debug(client, settings):
    settings.DEBUG = True
    assert client.get("/api/docs").status_code == 200
