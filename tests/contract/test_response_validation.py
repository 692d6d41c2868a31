"""Layer (c) cannot silently pass: the response hook validates real responses and rejects bad ones."""

from __future__ import annotations

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from openapi_core.exceptions import OpenAPIError

from tests.support.spec_validation import ResponseValidator

HOST = "http://testserver.local"


def _response(
    status: int, body: bytes, *, version: str = "2026-11-01", content_type: str = "application/json"
) -> httpx.Response:
    request = httpx.Request("GET", f"{HOST}/execution/variables/greeting")
    headers = {"content-type": content_type, "tocsin-api-version": version}
    return httpx.Response(status, content=body, headers=headers, request=request)


def test__a_conforming_response_passes_and_is_counted() -> None:
    validator = ResponseValidator(HOST)
    validator(_response(200, b'{"key": "greeting", "value": "hi", "description": null}'))
    assert validator.validated == 1


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (200, b'{"key": "greeting"}', "application/json"),  # a required field missing
        (200, b'{"key": "greeting", "value": 1, "description": null}', "application/json"),  # wrong type
        (201, b'{"key": "greeting", "value": "hi", "description": null}', "application/json"),  # undocumented status
        (404, b'{"detail": "nope"}', "application/json"),  # an error that is not problem+json
    ],
    ids=["missing-field", "wrong-type", "undocumented-status", "not-problem-json"],
)
def test__a_non_conforming_response_is_rejected(status: int, body: bytes, content_type: str) -> None:
    with pytest.raises(OpenAPIError):
        ResponseValidator(HOST)(_response(status, body, content_type=content_type))


def test__functional_clients_validate_every_contract_response(admin: TestClient[Litestar]) -> None:
    hook = admin.event_hooks["response"][0]
    assert isinstance(hook, ResponseValidator)
    admin.put("/execution/variables/greeting", json={"value": "hi"})
    admin.get("/execution/variables/greeting")
    admin.get("/execution/variables/absent")
    assert hook.validated == 3
