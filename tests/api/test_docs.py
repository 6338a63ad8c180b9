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


@pytest.mark.django_db
def test_docs_load_without_internet(client, settings):
    """Swagger UI's files are Ninja's bundled copies, served by the site (issue 9, defect 9)."""
    import re

    settings.DEBUG = True
    page = client.get("/api/docs")
    html = page.content.decode()
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert urls, html
    assert not [u for u in urls if u.startswith(("http:", "https:", "//"))], urls
    assert "cdn." not in html and "unpkg" not in html
    assets = [u for u in urls if u.endswith((".js", ".css"))]
    assert any(u.endswith("swagger-ui-bundle.js") for u in assets), assets
    assert any(u.endswith("swagger-ui.css") for u in assets), assets
    for url in assets:
        response = client.get(url)
        assert response.status_code == 200, url
        body = b"".join(response.streaming_content) if response.streaming else response.content
        assert body
