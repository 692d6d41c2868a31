"""Semantic diff of two OpenAPI documents: the hand-written spec against Litestar's live schema.

Both sides are reduced to ``{"METHOD /path": operation}`` with every ``$ref`` resolved and every schema
normalised (titles, descriptions and examples dropped, unions and required lists in one canonical form),
then compared recursively. Findings on an allow-listed path suffix are reviewed Litestar quirks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

HTTP_METHODS = ("get", "put", "post", "patch", "delete", "head", "options")
VERSION_HEADER = "tocsin-api-version"
_DROPPED_KEYS = frozenset(
    {
        "title",
        "description",
        "summary",
        "examples",
        "example",
        "deprecated",
        "operationId",
        "tags",
        "default",
        "discriminator",
        "externalDocs",
        "contentEncoding",
        # Annotations without a validation effect that datamodel-codegen does not carry into the models; the
        # behaviour they document (no secret in an answer) has tests of its own (test_connection_secrets.py).
        "writeOnly",
        "readOnly",
    }
)
# int32/int64 only document the size of an integer; Litestar never writes them and the Python type is int.
_KEPT_FORMATS = frozenset({"uuid", "date-time", "date", "time", "duration", "binary", "byte"})
_LITESTAR_PATH_PARAM = re.compile(r"\{(\w+):\w+\}")


@dataclass(frozen=True)
class Finding:
    where: str
    spec: Any
    live: Any

    def __str__(self) -> str:
        return f"{self.where}\n    spec: {self.spec!r}\n    live: {self.live!r}"


def resolve_refs(node: Any, root: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            ref = node["$ref"]
            if ref in seen:
                return {"$cycle": ref}
            target: Any = root
            for part in ref.removeprefix("#/").split("/"):
                target = target[part]
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return resolve_refs(merged, root, (*seen, ref))
        return {key: resolve_refs(value, root, seen) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve_refs(item, root, seen) for item in node]
    return node


def _number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def normalize_schema(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROPPED_KEYS or key.startswith("x-"):
            continue
        if key == "format" and value not in _KEPT_FORMATS:
            continue
        if key == "additionalProperties" and value in ({}, True, False):
            continue  # strictness is proven by the fuzzer and the forbid-unknown-fields tests
        if key == "required":
            if value:
                out[key] = sorted(value)
            continue
        if key == "enum":
            out[key] = sorted(value, key=repr)
            continue
        if key == "const":
            out["enum"] = [value]
            continue
        if key == "properties":
            out[key] = {name: normalize_schema(sub) for name, sub in value.items()}
            continue
        if key in ("items", "not"):
            out[key] = normalize_schema(value)
            continue
        if key == "allOf" and len(value) == 1:
            # Litestar wraps an annotated enum or struct field as a one-element allOf; it means the same.
            merged = {**normalize_schema(value[0]), **out}
            out.clear()
            out.update(merged)
            continue
        if key == "allOf" and all(isinstance(part, dict) and "properties" in part for part in value):
            # A schema that extends an object (HistoryExpiredProblem: a Problem with one more field); Litestar
            # writes the merged object. Both mean: every property, every required one.
            parts = [normalize_schema(part) for part in value]
            out["type"] = "object"
            out["properties"] = {name: sub for part in parts for name, sub in part["properties"].items()}
            out["required"] = sorted({name for part in parts for name in part.get("required", [])})
            continue
        if key in ("oneOf", "anyOf"):
            out.setdefault("anyOf", []).extend(value)
            continue
        out[key] = _number(value)
    return _canonical_union(out)


def _alternatives(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Split a schema into the union of its alternatives (``type`` lists and ``anyOf`` both count)."""
    if "anyOf" in schema:
        shared = {k: v for k, v in schema.items() if k != "anyOf"}
        result: list[dict[str, Any]] = []
        for alternative in schema["anyOf"]:
            alt = normalize_schema(alternative)
            for leaf in _alternatives(alt):
                if leaf.get("type") == "null":
                    result.append({"type": "null"})
                else:
                    merged = {**shared, **leaf}
                    if "enum" in merged and "enum" in shared and "enum" in leaf:
                        merged["enum"] = leaf["enum"]
                    result.append(merged)
        return result
    kind = schema.get("type")
    if isinstance(kind, list):
        rest = {k: v for k, v in schema.items() if k != "type"}
        out = []
        for single in kind:
            if single == "null":
                out.append({"type": "null"})
            else:
                branch = {**rest, "type": single}
                if "enum" in branch:
                    branch["enum"] = [v for v in branch["enum"] if v is not None]
                out.append(branch)
        return out
    if "enum" in schema and None in schema["enum"]:
        rest = {**schema, "enum": [v for v in schema["enum"] if v is not None]}
        return [rest, {"type": "null"}]
    return [schema]


def _canonical_union(schema: dict[str, Any]) -> dict[str, Any]:
    alternatives = _alternatives(schema)
    if len(alternatives) == 1:
        return alternatives[0]
    unique: dict[str, dict[str, Any]] = {}
    for alternative in alternatives:
        unique.setdefault(repr(sorted(alternative.items(), key=lambda kv: kv[0])), alternative)
    if len(unique) == 1:
        return next(iter(unique.values()))
    return {"anyOf": [unique[key] for key in sorted(unique)]}


def _drop_null(schema: Any) -> Any:
    if isinstance(schema, dict) and "anyOf" in schema:
        rest = [alt for alt in schema["anyOf"] if alt != {"type": "null"}]
        return rest[0] if len(rest) == 1 else {"anyOf": rest}
    return schema


def reduce_document(document: dict[str, Any]) -> dict[str, Any]:
    resolved = resolve_refs(document, document)
    operations: dict[str, Any] = {}
    for raw_path, item in resolved.get("paths", {}).items():
        path = _LITESTAR_PATH_PARAM.sub(r"{\1}", raw_path)
        for method in HTTP_METHODS:
            if method not in item:
                continue
            operation = item[method]
            parameters: dict[str, Any] = {}
            for parameter in [*item.get("parameters", []), *operation.get("parameters", [])]:
                if parameter["in"] == "header" and parameter["name"].lower() == VERSION_HEADER:
                    continue  # the version header selects a contract; dedicated tests cover it
                required = bool(parameter.get("required", False))
                schema = normalize_schema(parameter.get("schema", {}))
                if not required:
                    schema = _drop_null(schema)
                parameters[f"{parameter['in']}:{parameter['name']}"] = {"required": required, "schema": schema}
            reduced: dict[str, Any] = {"parameters": parameters, "responses": {}}
            if "requestBody" in operation:
                body = operation["requestBody"]
                reduced["requestBody"] = {
                    "required": bool(body.get("required", False)),
                    "content": {ct: normalize_schema(c.get("schema", {})) for ct, c in body.get("content", {}).items()},
                }
            for status, response in operation.get("responses", {}).items():
                reduced["responses"][str(status)] = {
                    "content": {
                        ct: normalize_schema(c.get("schema", {})) for ct, c in response.get("content", {}).items()
                    },
                }
            operations[f"{method.upper()} {path}"] = reduced
    return operations


def diff(spec: Any, live: Any, where: str = "") -> list[Finding]:
    if isinstance(spec, dict) and isinstance(live, dict):
        findings: list[Finding] = []
        for key in sorted(set(spec) | set(live), key=str):
            here = f"{where}/{key}"
            if key not in live:
                findings.append(Finding(here, spec[key], "<missing>"))
            elif key not in spec:
                findings.append(Finding(here, "<missing>", live[key]))
            else:
                findings.extend(diff(spec[key], live[key], here))
        return findings
    if isinstance(spec, list) and isinstance(live, list) and len(spec) == len(live):
        return [f for i, (a, b) in enumerate(zip(spec, live, strict=True)) for f in diff(a, b, f"{where}[{i}]")]
    return [] if spec == live else [Finding(where, spec, live)]


def compare(spec_doc: dict[str, Any], live_doc: dict[str, Any], allow: dict[str, str]) -> list[Finding]:
    """Findings not covered by the allow-list (path-suffix regex → reason)."""
    findings = diff(reduce_document(spec_doc), reduce_document(live_doc))
    patterns = [re.compile(pattern + "$") for pattern in allow]
    return [f for f in findings if not any(p.search(f.where) for p in patterns)]


def operations_of(document: dict[str, Any]) -> set[str]:
    return set(reduce_document(document))
