"""Layer (c) of the contract gate: every response a functional test sees is checked against the spec of
the version that served it (openapi-core), because Litestar never validates responses."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from tocsin_server.web.spec import load_spec
from tocsin_server.web.versioning import VERSIONS
from werkzeug.datastructures import Headers, ImmutableMultiDict

_CONFIG = Config(extra_media_type_deserializers={"application/problem+json": json.loads})


@dataclass
class _Request:
    host_url: str
    path: str
    method: str
    parameters: RequestParameters
    content_type: str
    body: bytes | None


@dataclass
class _Response:
    status_code: int
    content_type: str
    headers: Headers
    data: bytes | None


@functools.cache
def _apis(host_url: str) -> dict[str, OpenAPI]:
    """Built once per host for the whole session: parsing and validating ~7,400 lines of spec takes seconds."""
    apis = {}
    for version in VERSIONS:
        spec = {**load_spec(version), "servers": [{"url": host_url}]}
        apis[version] = OpenAPI.from_dict(spec, config=_CONFIG)
    return apis


class ResponseValidator:
    """An httpx response hook; raises on the first response that does not match its version's spec."""

    def __init__(self, host_url: str) -> None:
        self.apis = _apis(host_url)
        self.validated = 0

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        version = response.headers.get("tocsin-api-version")
        if version is None:
            return  # unknown-version 400s belong to no version; dedicated tests check them
        request = response.request
        url = urlsplit(str(request.url))
        query: dict[str, Any] = parse_qs(url.query)
        adapted_request = _Request(
            host_url=f"{url.scheme}://{url.netloc}",
            path=url.path,
            method=request.method.lower(),
            parameters=RequestParameters(query=ImmutableMultiDict([(k, v) for k, vs in query.items() for v in vs])),
            content_type=request.headers.get("content-type", ""),
            body=request.content or None,
        )
        adapted_response = _Response(
            status_code=response.status_code,
            content_type=response.headers.get("content-type", "").split(";")[0],
            headers=Headers(list(response.headers.items())),
            data=response.content or None,
        )
        try:
            self.apis[version].validate_response(adapted_request, adapted_response)
        except (PathNotFound, OperationNotFound):
            return  # not a contract operation (docs, schema, an unknown route)
        self.validated += 1
