"""One test per framework message the server reads (tocsin_server.web.framework_text), against the real library.

If an upgrade rewords one of these messages, its test fails here, instead of a 422 silently becoming a 400 or
an error losing the name of its field. The last tests pin the versions the patterns were read off.
"""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any

import msgspec
import pytest
from litestar import Litestar, Request, Response, get, put
from litestar.exceptions import ValidationException
from litestar.params import JSONBody, QueryParameter
from litestar.testing import TestClient
from tocsin_server.web.framework_text import (
    CHECKED_AGAINST,
    litestar_missing_parameter,
    msgspec_error_location,
    msgspec_named_field,
)
from tocsin_server.web.raw_body import json_body

_CONSTRAINTS = Path(__file__).resolve().parents[2] / "constraints.txt"


class _Inner(msgspec.Struct, forbid_unknown_fields=True):
    trigger_id: int


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    value: str
    events: list[_Inner] = []


def _msgspec_error(document: bytes) -> msgspec.ValidationError:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.decode(document, type=_Body)
    return caught.value


def test__msgspec__a_nested_error_names_its_path() -> None:
    error = _msgspec_error(b'{"value": "v", "events": [{"trigger_id": "one"}]}')
    assert msgspec_error_location(error) == ("Expected `int`, got `str`", "events[0].trigger_id")


def test__msgspec__a_top_level_error_has_no_path() -> None:
    error = _msgspec_error(b"[]")
    assert msgspec_error_location(error) == ("Expected `object`, got `array`", "")


def test__msgspec__a_missing_field_is_named() -> None:
    message, path = msgspec_error_location(_msgspec_error(b"{}"))
    assert (msgspec_named_field(message), path) == ("value", "")


def test__msgspec__an_unknown_field_is_named() -> None:
    message, path = msgspec_error_location(_msgspec_error(b'{"value": "v", "malformed": 1}'))
    assert (msgspec_named_field(message), path) == ("malformed", "")


def test__msgspec__other_messages_name_no_field() -> None:
    message, _ = msgspec_error_location(_msgspec_error(b'{"value": 1}'))
    assert msgspec_named_field(message) is None


def _litestar_validation(path: str, **request: Any) -> ValidationException:
    """The ValidationException Litestar itself raises for ``request`` (no tocsin code in between)."""
    caught: list[ValidationException] = []

    def keep(_: Request[Any, Any, Any], exc: ValidationException) -> Response[None]:
        caught.append(exc)
        return Response(None, status_code=400)

    @get("/needs-query", sync_to_thread=False)
    def needs_query(run_id: Annotated[str, QueryParameter()]) -> None:
        return None

    @put("/needs-body", dto=json_body(_Body), return_dto=None, sync_to_thread=False)
    def needs_body(data: JSONBody[_Body]) -> None:
        return None

    app = Litestar([needs_query, needs_body], exception_handlers={ValidationException: keep})
    with TestClient(app) as client:
        client.request(**request, url=path)
    [exc] = caught
    return exc


def test__litestar__a_missing_parameter_is_named_with_its_source() -> None:
    exc = _litestar_validation("/needs-query?dag_id=d", method="GET")
    assert litestar_missing_parameter(exc.detail) == ("query", "run_id")


def test__litestar__an_empty_body_fails_its_data_argument() -> None:
    """Not text: Litestar skips the body decoder when there is no body and reports its ``data`` argument
    (key ``data``, source ``body``) in ``extra``; the problem map reads that as "no body"."""
    exc = _litestar_validation("/needs-body", method="PUT", content=b"")
    assert isinstance(exc.extra, list)
    assert [(item["key"], item["source"]) for item in exc.extra] == [("data", "body")]


def test__other_text_names_no_parameter() -> None:
    assert litestar_missing_parameter("Validation failed for GET /needs-query?limit=0") is None


@pytest.mark.parametrize("package", sorted(CHECKED_AGAINST))
def test__the_installed_framework_is_the_one_the_patterns_were_read_off(package: str) -> None:
    """Upgrading Litestar or msgspec means re-reading their messages: change CHECKED_AGAINST with the pin."""
    pinned = re.search(rf"^{package}==(\S+)$", _CONSTRAINTS.read_text(), re.MULTILINE)
    assert pinned is not None, f"constraints.txt pins no {package}"
    assert version(package) == pinned.group(1) == CHECKED_AGAINST[package]
