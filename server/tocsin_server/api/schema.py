"""The published contract of each version, as written, and a docs UI over it. Open to everyone."""

from __future__ import annotations

from typing import Annotated

from litestar import MediaType, Response, Router, get
from litestar.params import QueryParameter

from tocsin_server.web.auth import OPEN_ROUTE
from tocsin_server.web.spec import spec_json
from tocsin_server.web.versioning import LATEST, resolve_version

_DOCS_PAGE = """<!doctype html>
<html>
  <head>
    <title>tocsin API {version}</title>
    <meta charset="utf-8"/>
    <meta name="viewport" content="width=device-width, initial-scale=1">
  </head>
  <body>
    <redoc spec-url="/openapi.json?version={version}"></redoc>
    <script src="https://cdn.redoc.ly/redoc/latest/bundles/redoc.standalone.js"></script>
  </body>
</html>
"""

Version = Annotated[str | None, QueryParameter(description="The API version; the latest when absent.")]


@get("/openapi.json", include_in_schema=False, opt={OPEN_ROUTE: True})
async def openapi_json(version: Version = None) -> Response[bytes]:
    return Response(spec_json(resolve_version(version or LATEST)), media_type="application/vnd.oai.openapi+json")


@get("/docs", include_in_schema=False, opt={OPEN_ROUTE: True}, media_type=MediaType.HTML)
async def docs(version: Version = None) -> str:
    return _DOCS_PAGE.format(version=resolve_version(version or LATEST))


router = Router("/", route_handlers=[openapi_json, docs])
