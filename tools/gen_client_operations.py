"""Emit the client's typed operations from an OpenAPI file: one sync and one async method per operationId.

datamodel-code-generator makes models only; this small generator adds the calls. Run by ./codegen.sh,
which formats the output with ruff. The output depends only on the spec, so ``./codegen.sh --check`` can
compare it byte for byte.
"""

from __future__ import annotations

import keyword
import re
import sys
from pathlib import Path
from typing import Any

import yaml

HTTP_METHODS = ("get", "put", "post", "patch", "delete")
PRIMITIVES = {"integer": "int", "number": "float", "boolean": "bool"}
UNIONS = ("oneOf", "anyOf")


def snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def python_name(name: str) -> str:
    name = re.sub(r"\W", "_", name)
    return f"{name}_" if keyword.iskeyword(name) else name


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        ref: str = node["$ref"]
        target: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def schema_type(doc: dict[str, Any], schema: dict[str, Any]) -> str:
    """The Python annotation for a parameter or body schema, as datamodel-codegen types the same schema.

    A named schema that is an object, a union or an enum is the class datamodel-codegen generates under the
    schema's own name (``TaskInstanceStateName`` -> ``class TaskInstanceStateName(StrEnum)``); a named alias of
    a primitive is that primitive. An inline enum has no generated class, so it is a ``Literal``.
    """
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        target = resolve(doc, schema)
        if target.get("type") == "object" or "enum" in target or any(key in target for key in UNIONS):
            return nullable(f"models.{name}", target)
        return schema_type(doc, target)
    if "enum" in schema:
        values = [value for value in schema["enum"] if value is not None]
        literal = f"Literal[{', '.join(repr(value) for value in values)}]"
        return f"{literal} | None" if None in schema["enum"] else nullable(literal, schema)
    kinds = schema.get("type")
    kind = next((item for item in kinds if item != "null"), None) if isinstance(kinds, list) else kinds
    if kind == "array":
        annotation = f"list[{schema_type(doc, schema.get('items', {}))}]"
    elif kind == "string":
        annotation = {"uuid": "UUID", "date-time": "datetime"}.get(schema.get("format", ""), "str")
    else:
        annotation = PRIMITIVES.get(kind or "", "Any")
    return nullable(annotation, schema)


def nullable(annotation: str, schema: dict[str, Any]) -> str:
    """``annotation | None`` when the schema admits null (3.1 ``type: [..., "null"]`` or 3.0 ``nullable``)."""
    kinds = schema.get("type")
    admits_null = schema.get("nullable") is True or (isinstance(kinds, list) and "null" in kinds)
    return f"{annotation} | None" if admits_null and annotation != "Any" else annotation


def success_response(doc: dict[str, Any], operation: dict[str, Any]) -> tuple[int, str | None]:
    for status, declared in sorted(operation["responses"].items()):
        if str(status).startswith("2"):
            response = resolve(doc, declared)
            content = response.get("content", {}).get("application/json")
            if content is None:
                return int(status), None
            ref = content["schema"].get("$ref")
            return int(status), f"models.{ref.rsplit('/', 1)[-1]}" if ref else "Any"
    msg = f"{operation['operationId']} has no 2xx response"
    raise ValueError(msg)


def parameters(doc: dict[str, Any], path_item: dict[str, Any], operation: dict[str, Any]) -> list[dict[str, Any]]:
    """The path item's parameters, then the operation's; an operation's parameter overrides one of the same name and location."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for declared in [*path_item.get("parameters", []), *operation.get("parameters", [])]:
        parameter = resolve(doc, declared)
        merged[parameter["name"], parameter["in"]] = parameter
    return list(merged.values())


def emit_operation(
    doc: dict[str, Any], path: str, path_item: dict[str, Any], method: str, operation: dict[str, Any], *, is_async: bool
) -> str:
    """One method; its signature says what the spec says.

    Path parameters and the body are positional. Query parameters are keyword-only: a required one has no
    default, an optional one defaults to None, which leaves it out of the request so the server's default holds.
    """
    name = snake_case(operation["operationId"])
    args: list[str] = []
    kwargs: list[str] = []
    path_expr = path
    query: list[str] = []
    for parameter in parameters(doc, path_item, operation):
        if parameter["in"] in ("header", "cookie"):
            continue  # the version header is set by the client itself
        pname = python_name(parameter["name"])
        annotation = schema_type(doc, parameter.get("schema", {}))
        if parameter["in"] == "path":
            args.append(f"{pname}: {annotation}")
            path_expr = path_expr.replace("{" + parameter["name"] + "}", "{_path(" + pname + ")}")
        elif parameter.get("required", False):
            kwargs.append(f"{pname}: {annotation}")
            query.append(f'"{parameter["name"]}": {pname}')
        else:
            kwargs.append(f"{pname}: {optional(annotation)} = None")
            query.append(f'"{parameter["name"]}": {pname}')
    body = operation.get("requestBody")
    if body is not None:
        body = resolve(doc, body)
        annotation = schema_type(doc, body["content"]["application/json"]["schema"])
        args.append(f"body: {annotation}" if body.get("required", False) else f"body: {optional(annotation)} = None")
    status, returns = success_response(doc, operation)
    signature = ", ".join(["self", *args, *(["*", *kwargs] if kwargs else [])])
    call = (
        f'self._call("{method.upper()}", f"{path_expr}", operation="{operation["operationId"]}", expected={status}, '
        f"params={{{', '.join(query)}}}, body={'body' if body is not None else 'None'}, "
        f"response_type={returns or 'None'})"
    )
    summary = operation.get("summary", name)
    return (
        f"    {'async ' if is_async else ''}def {name}({signature}) -> {returns or 'None'}:\n"
        f'        """{summary} (`{method.upper()} {path}`, operationId `{operation["operationId"]}`)."""\n'
        f"        return {'await ' if is_async else ''}{call}\n"
    )


def optional(annotation: str) -> str:
    return annotation if annotation == "Any" or annotation.endswith(" | None") else f"{annotation} | None"


def generate(spec_path: Path) -> str:
    doc = yaml.safe_load(spec_path.read_text())
    operations = [
        (path, item, method, item[method])
        for path, item in doc["paths"].items()
        for method in HTTP_METHODS
        if method in item
    ]
    operations.sort(key=lambda entry: entry[3]["operationId"])
    sync_methods = "\n".join(emit_operation(doc, *entry, is_async=False) for entry in operations)
    async_methods = "\n".join(emit_operation(doc, *entry, is_async=True) for entry in operations)
    version = doc["info"]["version"]
    typing_names = ", ".join(["Any", *(["Literal"] if "Literal[" in sync_methods else []), "Protocol"])
    return f'''# Generated by ./codegen.sh from openapi/versions/ — do not edit by hand.
"""Typed operations of API version {version}: one sync and one async method per operationId."""

from __future__ import annotations

from datetime import datetime
from typing import {typing_names}
from urllib.parse import quote
from uuid import UUID

from tocsin_client.generated import models

API_VERSION = "{version}"

OPERATION_IDS = ({", ".join(repr(entry[3]["operationId"]) for entry in operations)},)


def _path(value: object) -> str:
    return quote(str(value), safe="")


class _SyncTransport(Protocol):
    def _call(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        expected: int,
        params: dict[str, Any],
        body: object | None,
        response_type: type[Any] | None,
    ) -> Any: ...


class _AsyncTransport(Protocol):
    async def _call(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        expected: int,
        params: dict[str, Any],
        body: object | None,
        response_type: type[Any] | None,
    ) -> Any: ...


class SyncOperations(_SyncTransport):
    """Blocking calls; mixed into ``tocsin_client.Client``."""

{sync_methods}

class AsyncOperations(_AsyncTransport):
    """Awaitable calls; mixed into ``tocsin_client.AsyncClient``."""

{async_methods}
'''


if __name__ == "__main__":
    sys.stdout.write(generate(Path(sys.argv[1])))
