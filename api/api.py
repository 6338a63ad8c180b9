from __future__ import annotations

from ninja import NinjaAPI

from api.errors import install_error_handlers
from api.health import router as health_router

api = NinjaAPI(title="ZalypaSPB API", version="1", urls_namespace="api")
install_error_handlers(api)
api.add_router("/", health_router)
