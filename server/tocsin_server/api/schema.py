"""The published contract of each version, as written, and a docs UI over it (web/docs_ui.py). Open to everyone."""

from __future__ import annotations

from typing import Annotated

from litestar import MediaType, Response, Router, get
from litestar.params import QueryParameter

from tocsin_server.web.auth import OPEN_ROUTE
from tocsin_server.web.docs_ui import assets_router, docs_page
from tocsin_server.web.spec import spec_json
from tocsin_server.web.versioning import LATEST, resolve_version

Version = Annotated[str | None, QueryParameter(description="The API version; the latest when absent.")]


@get("/openapi.json", include_in_schema=False, opt={OPEN_ROUTE: True})
async def openapi_json(version: Version = None) -> Response[bytes]:
    return Response(spec_json(resolve_version(version or LATEST)), media_type="application/vnd.oai.openapi+json")


@get("/docs", include_in_schema=False, opt={OPEN_ROUTE: True}, media_type=MediaType.HTML)
async def docs(version: Version = None) -> str:
    return docs_page(resolve_version(version or LATEST))


router = Router("/", route_handlers=[openapi_json, docs, assets_router()])
