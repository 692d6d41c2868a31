"""Every operation of a spec file as a concrete request: tests that must hold on every route iterate these,
so an operation added later is covered without anyone remembering to list it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tocsin_server.web.spec import load_spec

from tests.contract.schema_diff import resolve_refs

_METHODS = ("get", "put", "post", "patch", "delete")
_SAMPLE_UUID = "00000000-0000-4000-8000-000000000001"


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    path: str
    """The path with every path parameter filled with a valid sample value."""
    open: bool
    """Needs no token (``security: []``)."""
    takes_body: bool
    tags: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.operation_id


def _sample(schema: dict[str, Any]) -> str:
    if schema.get("type") == "integer":
        return "1"
    if schema.get("format") == "uuid":
        return _SAMPLE_UUID
    return "x"


def operations(version: str) -> list[Operation]:
    document = load_spec(version)
    resolved = resolve_refs(document, document)
    found = []
    for template, item in resolved["paths"].items():
        for method in _METHODS:
            if method not in item:
                continue
            operation = item[method]
            path = template
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    path = path.replace("{" + parameter["name"] + "}", _sample(parameter["schema"]))
            found.append(
                Operation(
                    operation_id=operation["operationId"],
                    method=method.upper(),
                    path=path,
                    open=operation.get("security") == [],
                    takes_body="requestBody" in operation,
                    tags=tuple(operation.get("tags", ())),
                )
            )
    return found
