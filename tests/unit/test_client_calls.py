"""Client and AsyncClient against httpx.MockTransport: requests sent, answers decoded, errors typed."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

import httpx
import msgspec
import pytest
import tocsin_client
from tocsin_client import AsyncClient, Client, errors
from tocsin_client import _client as client_module
from tocsin_client.generated import models
from tocsin_client.generated.operations import API_VERSION

BASE = "http://tocsin.test"
Handler = Callable[[httpx.Request], httpx.Response]


def problem_response(status: int, **extra: object) -> httpx.Response:
    body = {"type": f"urn:tocsin:problem:{status}", "title": "Nope", "status": status, "detail": "it failed", **extra}
    return httpx.Response(status, json=body, headers={"Content-Type": "application/problem+json"})


def make_client(handler: Handler, **kwargs: object) -> Client:
    return Client(BASE, token="tok-1", transport=httpx.MockTransport(handler), **kwargs)  # type: ignore[arg-type]


def make_async_client(handler: Handler, **kwargs: object) -> AsyncClient:
    return AsyncClient(BASE, token="tok-1", transport=httpx.MockTransport(handler), **kwargs)  # type: ignore[arg-type]


def test__call__on_expected_status__decodes_the_response_type() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "GET"
        assert request.url.path == "/execution/variables/greeting"
        return httpx.Response(200, json={"key": "greeting", "value": "hello", "description": None, "new_field": 1})

    with make_client(handler) as client:
        variable = client.get_variable("greeting")

    assert variable == models.Variable(key="greeting", value="hello", description=None)


def test__call__sends_version_token_and_accept_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "ok"})

    with make_client(handler) as client:
        client.get_health()
    with make_client(handler, api_version="2026-06-01") as client:
        client.get_health()

    assert seen[0].headers["Tocsin-API-Version"] == API_VERSION
    assert seen[0].headers["Authorization"] == "Bearer tok-1"
    assert "application/problem+json" in seen[0].headers["Accept"]
    assert seen[1].headers["Tocsin-API-Version"] == "2026-06-01"


def test__call__without_token__sends_no_authorization() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "ok"})

    with Client(BASE, transport=httpx.MockTransport(handler)) as client:
        client.get_health()

    assert "Authorization" not in seen[0].headers


def test__call__drops_none_params_and_repeats_lists() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"dag_id": "d", "run_id": "r", "task_states": []})

    with make_client(handler) as client:
        client.get_task_instance_states(dag_id="d", run_id="r", task_ids=["a", "b"])
        client.get_task_instance_states(dag_id="d", run_id="r")

    assert seen[0].url.params.multi_items() == [("dag_id", "d"), ("run_id", "r"), ("task_ids", "a"), ("task_ids", "b")]
    assert seen[1].url.params.multi_items() == [("dag_id", "d"), ("run_id", "r")]


def test__call__sends_enums_as_their_value_and_datetimes_as_rfc3339() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"task_instances": [], "total": 0})

    with make_client(handler) as client:
        client.list_task_instances(state=models.TaskInstanceStateName.up_for_retry, limit=5)

    assert seen[0].url.params.multi_items() == [("state", "up_for_retry"), ("limit", "5")]
    assert client_module._query_value(datetime(2026, 12, 1, 9, 30, tzinfo=UTC)) == "2026-12-01T09:30:00+00:00"


def test__call__encodes_the_body_with_msgspec_leaving_out_unset_fields() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"key": "k", "value": "v", "description": None})

    with make_client(handler) as client:
        client.put_variable("k", models.VariableBody(value="v"))

    assert seen[0].method == "PUT"
    assert seen[0].headers["Content-Type"] == "application/json"
    assert msgspec.json.decode(seen[0].content) == {"value": "v"}


def test__call__with_tagged_union_body__sends_the_tag() -> None:
    seen: list[httpx.Request] = []
    ti_id = UUID("0193a1de-4f6b-7c2e-9f1a-2b3c4d5e6f70")
    ti = {
        "id": str(ti_id),
        "dag_id": "d",
        "run_id": "r",
        "task_id": "t",
        "map_index": -1,
        "try_number": 1,
        "state": "success",
        "trigger_id": None,
        "trigger_timeout": None,
        "next_method": None,
        "next_kwargs": None,
        "start_from_trigger": False,
    }

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=ti)

    with make_client(handler) as client:
        result = client.update_task_instance_state(ti_id, models.SuccessStateUpdate())

    assert msgspec.json.decode(seen[0].content) == {"state": "success"}
    assert result.id == ti_id
    assert result.state is models.TaskInstanceStateName.success


def test__call__with_no_response_type__returns_none() -> None:
    with make_client(lambda _: httpx.Response(204)) as client:
        assert client.delete_variable("k") is None


@pytest.mark.parametrize(
    ("status", "exc_type"),
    [
        (400, errors.BadRequestError),
        (401, errors.UnauthorizedError),
        (403, errors.ForbiddenError),
        (404, errors.NotFoundError),
        (409, errors.ConflictError),
        (413, errors.PayloadTooLargeError),
        (422, errors.ValidationError),
        (429, errors.RateLimitedError),
        (500, errors.ServerError),
        (503, errors.ServerError),
        (418, errors.APIError),
    ],
)
def test__call__on_problem_status__raises_the_typed_error(status: int, exc_type: type[errors.APIError]) -> None:
    field_errors = [{"key": "value", "message": "Expected `str`", "source": "body"}]
    client = make_client(lambda _: problem_response(status, errors=field_errors))
    with client, pytest.raises(exc_type) as caught:
        client.get_variable("k")

    exc = caught.value
    assert type(exc) is exc_type
    assert exc.status == status
    assert exc.problem.title == "Nope"
    assert exc.problem.detail == "it failed"
    assert exc.problem.errors == [models.FieldError(key="value", message="Expected `str`", source="body")]
    assert "/execution/variables/k" in str(exc)
    assert exc.transient is (status in (429, 500, 503))


def test__call__on_unexpected_success_status__raises_api_error() -> None:
    with make_client(lambda _: httpx.Response(200, json={})) as client, pytest.raises(errors.APIError) as caught:
        client.delete_variable("k")
    assert caught.value.status == 200


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(502, text="<html>Bad Gateway</html>"),
        httpx.Response(502),
        httpx.Response(502, json={"title": 5, "detail": "proxy", "errors": "not-a-list"}),
        httpx.Response(502, json=[1, 2]),
    ],
)
def test__call__with_non_problem_error_body__still_raises_typed_error(response: httpx.Response) -> None:
    with make_client(lambda _: response) as client, pytest.raises(errors.ServerError) as caught:
        client.get_health()

    problem = caught.value.problem
    assert problem.status == 502
    assert isinstance(problem.title, str)
    assert isinstance(problem.type, str)


def test__call__with_body_that_does_not_fit__raises_decode_error() -> None:
    client = make_client(lambda _: httpx.Response(200, json={"key": "k"}))
    with client, pytest.raises(errors.DecodeError) as caught:
        client.get_variable("k")
    assert not caught.value.transient


def test__call__with_refreshed_token_header__swaps_the_bearer_token() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        headers = {"Refreshed-API-Token": "tok-2"} if len(seen) == 1 else {}
        return httpx.Response(200, json={"status": "ok"}, headers=headers)

    with make_client(handler) as client:
        client.get_health()
        assert client.token == "tok-2"
        client.get_health()

    assert seen == ["Bearer tok-1", "Bearer tok-2"]


def test__call__with_refreshed_token_on_an_error__still_swaps() -> None:
    def handler(_: httpx.Request) -> httpx.Response:
        response = problem_response(404)
        response.headers["Refreshed-API-Token"] = "tok-3"
        return response

    with make_client(handler) as client:
        with pytest.raises(errors.NotFoundError):
            client.get_variable("k")
        assert client.token == "tok-3"


@pytest.mark.parametrize(
    "transport_exc",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("x"),
    ],
)
def test__call__on_transport_failure__raises_transient_transport_error(transport_exc: httpx.TransportError) -> None:
    def handler(_: httpx.Request) -> httpx.Response:
        raise transport_exc

    with make_client(handler) as client, pytest.raises(errors.TransportError) as caught:
        client.get_health()

    assert caught.value.transient
    assert tocsin_client.is_transient(caught.value)
    assert caught.value.__cause__ is transport_exc


def test__call__with_unsupported_scheme__raises_permanent_transport_error() -> None:
    with Client("ftp://tocsin.test") as client, pytest.raises(errors.TransportError) as caught:
        client.get_health()
    assert not caught.value.transient


def test__is_transient__only_for_tocsin_errors() -> None:
    problem = models.Problem(type="about:blank", title="x", status=404)
    assert not errors.is_transient(ValueError("x"))
    assert not errors.is_transient(errors.NotFoundError(404, problem))
    assert errors.is_transient(errors.ServerError(500, problem))


def test__errors__survive_pickling() -> None:
    problem = models.Problem(type="about:blank", title="Conflict", status=409, detail="held by job 3")
    exc = errors.ConflictError(409, problem, method="POST", path="/execution/triggers/1/event")
    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is errors.ConflictError
    assert (again.status, again.problem, again.method, again.path) == (409, problem, exc.method, exc.path)
    assert str(again) == str(exc)
    transport = pickle.loads(pickle.dumps(errors.TransportError("down", transient=False)))
    assert str(transport) == "down"
    assert not transport.transient


def test__client__uses_the_given_timeout() -> None:
    seen: list[dict[str, float | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200, json={"status": "ok"})

    with make_client(handler, timeout=httpx.Timeout(1.5, connect=0.5)) as client:
        client.get_health()

    assert seen[0] == {"connect": 0.5, "read": 1.5, "write": 1.5, "pool": 1.5}


def test__client__close_closes_the_pool() -> None:
    client = make_client(lambda _: httpx.Response(200, json={"status": "ok"}))
    client.close()
    with pytest.raises(RuntimeError):
        client.get_health()


async def test__async_call__decodes_and_raises_like_the_sync_client() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/missing"):
            return problem_response(404)
        return httpx.Response(
            200, json={"key": "k", "value": "v", "description": None}, headers={"Refreshed-API-Token": "tok-2"}
        )

    async with make_async_client(handler) as client:
        variable = await client.get_variable("k")
        with pytest.raises(errors.NotFoundError) as caught:
            await client.get_variable("missing")

    assert variable.value == "v"
    assert caught.value.problem.status == 404
    assert seen[0].headers["Tocsin-API-Version"] == API_VERSION
    assert seen[1].headers["Authorization"] == "Bearer tok-2"


async def test__async_call__on_connect_error__raises_transient_transport_error() -> None:
    def handler(_: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    async with make_async_client(handler) as client:
        with pytest.raises(errors.TransportError) as caught:
            await client.get_health()
    assert caught.value.transient


async def test__async_client__aclose_closes_the_pool() -> None:
    client = make_async_client(lambda _: httpx.Response(200, json={"status": "ok"}))
    await client.aclose()
    with pytest.raises(RuntimeError):
        await client.get_health()


async def test__with_token__shares_the_pool_and_keeps_its_own_token() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(200, json={"status": "ok"}, headers={"Refreshed-API-Token": "ti-2"})

    base = AsyncClient(BASE, token=None, transport=httpx.MockTransport(handler))
    ti = base.with_token("ti-1")
    assert ti._http is base._http
    await ti.get_health()
    assert seen == ["Bearer ti-1"]
    assert ti.token == "ti-2"
    assert base.token is None
    await base.aclose()
