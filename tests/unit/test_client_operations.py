"""Every operationId has exactly one sync method on Client and one coroutine method on AsyncClient."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any

import tocsin_client
import yaml
from tocsin_client import AsyncClient, Client
from tocsin_client.generated import models, operations
from tocsin_client.generated.operations import OPERATION_IDS, AsyncOperations, SyncOperations


def snake_case(operation_id: str) -> str:
    # An underscore before a capital that follows a lowercase letter or digit: getXCom -> get_xcom.
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", operation_id).lower()


def public_methods(cls: type) -> set[str]:
    return {name for name, member in inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_")}


def test__snake_case__splits_on_capitals() -> None:
    assert snake_case("getXCom") == "get_xcom"
    assert snake_case("submitTriggerEvent") == "submit_trigger_event"


def test__operations__each_operation_id_has_one_sync_method_on_client() -> None:
    expected = {snake_case(op) for op in OPERATION_IDS}

    assert len(expected) == len(OPERATION_IDS)
    assert public_methods(SyncOperations) == expected
    for name in expected:
        method = getattr(Client, name)
        assert not inspect.iscoroutinefunction(method), name
        assert method is getattr(SyncOperations, name), f"Client overrides {name}"


def test__operations__each_operation_id_has_one_coroutine_method_on_async_client() -> None:
    expected = {snake_case(op) for op in OPERATION_IDS}

    assert public_methods(AsyncOperations) == expected
    for name in expected:
        assert inspect.iscoroutinefunction(getattr(AsyncClient, name)), name


def test__operations__clients_add_no_generated_looking_methods() -> None:
    generated = {snake_case(op) for op in OPERATION_IDS}
    hand_written_sync = {"close", "defer_task_instance", "watch_task_instances", "with_token"}
    hand_written_async = {"aclose", "defer_task_instance", "watch_task_instances", "with_token"}

    assert public_methods(Client) == generated | hand_written_sync
    assert public_methods(AsyncClient) == generated | hand_written_async


def test__operations__docstrings_name_their_operation_id() -> None:
    for op in OPERATION_IDS:
        name = snake_case(op)
        assert f"operationId `{op}`" in (getattr(Client, name).__doc__ or "")
        assert f"operationId `{op}`" in (getattr(AsyncClient, name).__doc__ or "")


def test__exported_members__are_pinned() -> None:
    # Sorted isort-style (constants, classes, functions): ruff's RUF022 keeps it that way.
    assert set(tocsin_client.__all__) == {
        "API_VERSION",
        "APIError",
        "AsyncClient",
        "AsyncWatch",
        "Backoff",
        "BadRequestError",
        "Client",
        "ConflictError",
        "DecodeError",
        "ForbiddenError",
        "HistoryExpiredError",
        "NotFoundError",
        "PayloadTooLargeError",
        "RateLimitedError",
        "ServerError",
        "TocsinError",
        "TransportError",
        "UnauthorizedError",
        "ValidationError",
        "Watch",
        "deferral",
        "is_transient",
    }
    for name in tocsin_client.__all__:
        assert getattr(tocsin_client, name) is not None
    assert tocsin_client.API_VERSION == operations.API_VERSION


def test__errors__hierarchy_matches_the_docstring() -> None:
    from tocsin_client import errors

    for name in ("TransportError", "DecodeError", "APIError"):
        assert getattr(errors, name).__mro__[1] is errors.TocsinError
    for name in ("BadRequestError", "NotFoundError", "ValidationError", "RateLimitedError", "ServerError"):
        assert getattr(errors, name).__mro__[1] is errors.APIError
        assert name in (errors.__doc__ or "")


def latest_spec() -> dict[str, Any]:
    latest = sorted((Path(__file__).resolve().parents[2] / "openapi" / "versions").glob("*.yaml"))[-1]
    return dict(yaml.safe_load(latest.read_text()))


def query_parameters(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = spec
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    for item in spec["paths"].values():
        for method, operation in item.items():
            if method in {"get", "put", "post", "patch", "delete"}:
                for declared in [*item.get("parameters", []), *operation.get("parameters", [])]:
                    if (parameter := resolve(declared))["in"] == "query":
                        yield operation["operationId"], parameter


def test__operations__query_parameters_are_required_exactly_when_the_spec_says() -> None:
    seen = 0
    for operation_id, parameter in query_parameters(latest_spec()):
        for cls in (Client, AsyncClient):
            signature = inspect.signature(getattr(cls, snake_case(operation_id)), eval_str=True)
            declared = signature.parameters[parameter["name"]]
            assert declared.kind is inspect.Parameter.KEYWORD_ONLY, (operation_id, parameter["name"])
            if parameter.get("required", False):
                assert declared.default is inspect.Parameter.empty, (operation_id, parameter["name"])
            else:
                assert declared.default is None, (operation_id, parameter["name"])
            seen += 1
    assert seen > 0


def test__operations__enum_parameters_take_the_generated_enum() -> None:
    enums = 0
    for operation_id, parameter in query_parameters(latest_spec()):
        ref = parameter["schema"].get("$ref", "")
        name = ref.rsplit("/", 1)[-1]
        if not isinstance(getattr(models, name, None), type) or not issubclass(getattr(models, name), Enum):
            continue
        signature = inspect.signature(getattr(Client, snake_case(operation_id)), eval_str=True)
        annotation = signature.parameters[parameter["name"]].annotation
        expected = getattr(models, name) if parameter.get("required", False) else getattr(models, name) | None
        assert annotation == expected, (operation_id, parameter["name"], annotation)
        enums += 1
    assert enums > 0  # listTaskInstances' state, at least


def test__get_task_instance_states__requires_dag_id_and_run_id() -> None:
    parameters = inspect.signature(Client.get_task_instance_states).parameters
    assert parameters["dag_id"].default is inspect.Parameter.empty
    assert parameters["run_id"].default is inspect.Parameter.empty
    assert parameters["task_ids"].default is None
