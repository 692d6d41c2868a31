"""The problem types live in the shared leaf (issue 8, item 1): ``tocsin_wire.problems`` lists every kind, the
server builds each ``type`` from it, and the client names the kind of an error (``APIError.kind``)."""

from __future__ import annotations

import re

import httpx
import pytest
from tocsin_client import Client, errors
from tocsin_client.generated import models
from tocsin_server.errors import ConflictError, InvalidError, NotFoundError, ServiceError, TooLargeError
from tocsin_server.web import problems as server_problems
from tocsin_server.web.spec import spec_path
from tocsin_server.web.versioning import VERSIONS
from tocsin_wire import problems

URN = re.compile(r"urn:tocsin:problem:([A-Za-z0-9.\-]+)")


@pytest.mark.parametrize("version", VERSIONS)
def test__every_kind_a_spec_file_documents_is_in_the_leafs_list(version: str) -> None:
    documented = set(URN.findall(spec_path(version).read_text(encoding="utf-8")))
    assert documented, "the spec names problem types; the pattern must find them"
    assert documented <= problems.KINDS, documented - problems.KINDS


def test__the_latest_spec_documents_the_cause_kinds_the_server_sends() -> None:
    documented = set(URN.findall(spec_path(VERSIONS[-1]).read_text(encoding="utf-8")))
    assert {problems.VALIDATION, problems.JSON_TOO_DEEP, problems.INVALID_UTF8} <= documented
    assert problems.DATABASE_UNAVAILABLE in documented


def test__a_kind_outside_the_list_is_refused_before_it_reaches_the_wire() -> None:
    with pytest.raises(ValueError, match="not a tocsin problem kind"):
        problems.problem_type("made-up")


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (404, "not-found"),
        (409, "conflict"),
        # Python 3.13 renamed these phrases; the URNs clients match on stay as released.
        (413, "request-entity-too-large"),
        (422, "unprocessable-entity"),
        (414, "uri-too-long"),
        (599, problems.STATUS_FALLBACK),
    ],
)
def test__a_status_kind_is_fixed_in_the_leaf(status: int, kind: str) -> None:
    assert problems.kind_of_status(status) == kind
    assert kind in problems.KINDS


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (NotFoundError("no such run"), "not-found"),
        (ConflictError("held by another job"), "conflict"),
        (TooLargeError("too big", field="payload"), "request-entity-too-large"),
        (InvalidError("bad", field="state"), "unprocessable-entity"),
    ],
)
def test__the_server_builds_a_domain_errors_type_from_the_leaf(error: ServiceError, kind: str) -> None:
    _, body = server_problems.service_problem(error, instance="/x")
    assert body.type == problems.problem_type(kind)
    assert problems.kind_of(body.type) == kind


def _client_error(body: dict[str, object], status: int) -> errors.APIError:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, headers={"Content-Type": problems.PROBLEM_MEDIA_TYPE})

    with (
        Client("http://tocsin.test", token="t", transport=httpx.MockTransport(handler)) as client,
        pytest.raises(errors.APIError) as caught,
    ):
        client.create_dag_run(models.DagRunBody(dag_id="d", run_id="r"))
    return caught.value


def test__the_client_names_the_kind_of_an_error() -> None:
    body = {"type": problems.problem_type(problems.DATABASE_UNAVAILABLE), "title": "Service Unavailable", "status": 503}
    error = _client_error(body, 503)
    assert isinstance(error, errors.ServerError)
    assert error.kind == problems.DATABASE_UNAVAILABLE


def test__a_problem_not_of_tocsins_making_has_no_kind() -> None:
    error = _client_error({"type": "about:blank", "title": "Bad Gateway", "status": 502}, 502)
    assert error.kind is None
