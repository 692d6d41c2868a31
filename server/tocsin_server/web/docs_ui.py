"""The docs UI: Swagger UI from the pinned ``swagger-ui-bundle`` package, served by us, never from a CDN.

An operator's API server often has no internet; the page and every asset it loads come from this process, so
/docs renders the same offline. Swagger UI's ``urls`` list is the version switcher: one entry per served
version, each pointing at that version's published contract.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

from litestar import Router
from litestar.static_files import create_static_files_router
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]  # the package ships no py.typed

from tocsin_server.web.auth import OPEN_ROUTE
from tocsin_server.web.versioning import VERSIONS

ASSETS_PATH: Final = "/docs/assets"

# Relative asset URLs and an inline initializer: nothing here names a host. validatorUrl is turned off because
# Swagger UI would otherwise send every spec to validator.swagger.io; queryConfigEnabled stays off so a link
# cannot point the page at someone else's spec.
_PAGE: Final = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8"/>
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>tocsin API {version}</title>
    <link rel="stylesheet" href="{assets}/swagger-ui.css">
    <link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="{assets}/swagger-ui-bundle.js"></script>
    <script src="{assets}/swagger-ui-standalone-preset.js"></script>
    <script>
      window.ui = SwaggerUIBundle({{
        urls: {urls},
        "urls.primaryName": {primary},
        dom_id: "#swagger-ui",
        presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
        layout: "StandaloneLayout",
        deepLinking: true,
        validatorUrl: null,
        queryConfigEnabled: false,
      }});
    </script>
  </body>
</html>
"""


def _script_json(value: object) -> str:
    """JSON safe inside a <script> element (a "</" would end it)."""
    return json.dumps(value).replace("</", "<\\/")


def docs_page(version: str) -> str:
    """The page, opened on ``version``; the switcher lists every served version, newest first."""
    urls = [{"name": v, "url": f"/openapi.json?version={v}"} for v in reversed(VERSIONS)]
    return _PAGE.format(version=version, assets=ASSETS_PATH, urls=_script_json(urls), primary=_script_json(version))


def assets_router() -> Router:
    """The bundle's files under /docs/assets, open like the page itself and outside the published schema."""
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[Path(str(swagger_ui_path))],
        name="docs-assets",
        include_in_schema=False,
        opt={OPEN_ROUTE: True},
    )
