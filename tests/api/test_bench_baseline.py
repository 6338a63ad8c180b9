"""The benchmarks' baseline endpoint (api/bench.py) exists only in `make bench`'s stack."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from ninja.testing import TestClient

from api import bench
from api.api import api
from core.models import Product


def test_absent_from_the_schema_and_the_urls_by_default() -> None:
    paths = api.get_openapi_schema()["paths"]
    assert not [path for path in paths if "bench" in path]
    assert Client().get("/api/bench/baseline/1").status_code == 404


@pytest.mark.django_db
def test_one_primary_key_query(django_assert_num_queries: Any) -> None:
    product = Product.objects.create(name="Bench", slug="bench")
    client = TestClient(bench.router)
    with django_assert_num_queries(1):
        response = client.get(f"/baseline/{product.pk}")
    assert response.status_code == 200
    assert response.json() == {"id": product.pk, "slug": "bench"}
