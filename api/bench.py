"""The benchmarks' baseline (issue 12): a bare Ninja endpoint doing one primary-key query,
served by the same process behind the same middleware as the paths it is compared with.

Mounted only when settings.BENCH_BASELINE is on (ZSPB_BENCH_BASELINE=1, set by `make bench`
in its own stack), so a site never has the route and the published schema never shows it.
"""

from __future__ import annotations

from django.http import HttpRequest
from ninja import NinjaAPI, Router, Schema

from api.errors import ERRORS
from core.models import Product

router = Router(tags=["bench"])


class BaselineOut(Schema):
    id: int
    slug: str | None


@router.get("/baseline/{product_id}", auth=None, response={200: BaselineOut, **ERRORS},
            operation_id="bench_baseline",
            summary="Benchmarks only: one primary-key query, the baseline of `make bench`")
def baseline(request: HttpRequest, product_id: int) -> BaselineOut:
    slug = Product.objects.filter(pk=product_id).values_list("slug", flat=True).first()
    return BaselineOut(id=product_id, slug=slug)


def mount(api: NinjaAPI) -> None:
    api.add_router("/bench", router)
