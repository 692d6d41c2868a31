"""Type the spec's opaque fields ``msgspec.Raw`` in the generated server models (a step of ./codegen.sh).

A property marked ``x-tocsin-opaque: true`` holds JSON the server keeps as received and never decodes (an
event's payload, its XComs, a log line's extra fields). The server's structs must then decode it to
``msgspec.Raw``; the client's keep the decoded type, since the client reads payloads.

datamodel-code-generator has no option that does exactly this: ``x-python-type`` is ignored on a schema with no
``type`` (a payload may be any JSON), and ``--type-overrides`` turns an object field into ``dict[str, Raw]``
instead of one ``Raw``. So this step rewrites the field annotations of the generated module, found by the spec's
marks (never by field names): ``Annotated[Any, Meta(...)]`` becomes ``Annotated[Raw, Meta(...)]``, optional and
unset arms kept. A field the spec types as an object also gets ``extra_json_schema={"extra": {"type":
"object"}}`` in its ``Meta``: Litestar copies that ``extra`` into the published schema (so the live schema still
says ``type: object``), and ``tocsin_server.web.raw_body`` reads it to check the raw bytes are an object.

    python tools/opaque_fields.py SPEC MODELS     rewrite MODELS (a generated server module) in place
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from typing import Any

import yaml

MARK = "x-tocsin-opaque"
OBJECT_SCHEMA = {"extra": {"type": "object"}}
"""What a raw object field's ``Meta.extra_json_schema`` holds (read by Litestar and by the server)."""
_NO_VALUE_ARMS = ("UnsetType", "None")


class OpaqueFieldError(Exception):
    """The spec marks a field the generated module does not have in a form this step can rewrite."""


def snake_case(name: str) -> str:
    """The attribute name ``--snake-case-field`` gives a property."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def opaque_fields(spec: dict[str, Any]) -> dict[str, dict[str, bool]]:
    """``{schema name: {attribute name: whether the spec types it as an object}}`` for every marked property."""
    marked: dict[str, dict[str, bool]] = {}
    for schema_name, schema in spec.get("components", {}).get("schemas", {}).items():
        for prop, sub in (schema.get("properties") or {}).items():
            if isinstance(sub, dict) and sub.get(MARK) is True:
                kinds = sub.get("type")
                is_object = kinds == "object" or (isinstance(kinds, list) and "object" in kinds)
                marked.setdefault(schema_name, {})[snake_case(prop)] = is_object
    return marked


def _is_no_value(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id in _NO_VALUE_ARMS) or (
        isinstance(node, ast.Constant) and node.value is None
    )


def _object_keyword() -> ast.keyword:
    return ast.keyword(arg="extra_json_schema", value=ast.parse(repr(OBJECT_SCHEMA), mode="eval").body)


def _raw_arm(node: ast.expr, *, is_object: bool) -> ast.expr:
    """The value arm of a field annotation with its type replaced by ``Raw`` (its ``Meta`` kept)."""
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "Annotated":
        assert isinstance(node.slice, ast.Tuple)
        _, *extras = node.slice.elts
        metas = [e for e in extras if isinstance(e, ast.Call) and getattr(e.func, "id", None) == "Meta"]
        if is_object:
            if not metas:
                extras.append(ast.Call(func=ast.Name("Meta"), args=[], keywords=[]))
                metas = [extras[-1]]  # type: ignore[list-item]
            metas[0].keywords = [k for k in metas[0].keywords if k.arg != "extra_json_schema"] + [_object_keyword()]
        return ast.Subscript(value=node.value, slice=ast.Tuple([ast.Name("Raw"), *extras]))
    if is_object:
        meta = ast.Call(func=ast.Name("Meta"), args=[], keywords=[_object_keyword()])
        return ast.Subscript(value=ast.Name("Annotated"), slice=ast.Tuple([ast.Name("Raw"), meta]))
    return ast.Name("Raw")


def _rewrite(node: ast.expr, *, is_object: bool) -> tuple[ast.expr, int]:
    """``node`` with its one value arm made raw, and how many value arms it had."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, left_arms = _rewrite(node.left, is_object=is_object)
        right, right_arms = _rewrite(node.right, is_object=is_object)
        return ast.BinOp(left=left, op=ast.BitOr(), right=right), left_arms + right_arms
    if _is_no_value(node):
        return node, 0
    return _raw_arm(node, is_object=is_object), 1


def _offsets(text: str) -> list[int]:
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    return starts


def rewrite_models(source: str, marked: dict[str, dict[str, bool]]) -> str:
    """``source`` (a generated module) with every marked field typed ``Raw``; raises when one is missing."""
    tree = ast.parse(source)
    lines = _offsets(source)
    edits: list[tuple[int, int, str]] = []
    found: set[tuple[str, str]] = set()
    for cls in tree.body:
        if not isinstance(cls, ast.ClassDef) or cls.name not in marked:
            continue
        for statement in cls.body:
            if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
                continue
            name = statement.target.id
            if name not in marked[cls.name]:
                continue
            annotation, arms = _rewrite(statement.annotation, is_object=marked[cls.name][name])
            if arms != 1:
                msg = f"{cls.name}.{name}: expected one value type in its annotation, found {arms}"
                raise OpaqueFieldError(msg)
            node = statement.annotation
            start = lines[node.lineno - 1] + node.col_offset
            end = lines[node.end_lineno - 1] + node.end_col_offset  # type: ignore[operator]
            edits.append((start, end, ast.unparse(annotation)))
            found.add((cls.name, name))
    missing = sorted(f"{c}.{f}" for c, fields in marked.items() for f in fields if (c, f) not in found)
    if missing:
        msg = f"the spec marks fields the generated models do not have: {', '.join(missing)}"
        raise OpaqueFieldError(msg)
    if edits:
        edits.append(_import_edit(tree, lines))
    for start, end, text in sorted(edits, reverse=True):
        source = source[:start] + text + source[end:]
    return source


def _import_edit(tree: ast.Module, lines: list[int]) -> tuple[int, int, str]:
    """``from msgspec import ...`` with ``Raw`` added, in the order the generator's isort pass keeps."""
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "msgspec" and node.level == 0:
            names = {alias.name for alias in node.names} | {"Raw"}
            ordered = sorted(names, key=lambda n: (not n.isupper(), n))
            start = lines[node.lineno - 1] + node.col_offset
            end = lines[node.end_lineno - 1] + node.end_col_offset  # type: ignore[operator]
            return start, end, f"from msgspec import {', '.join(ordered)}"
    msg = "the generated models have no `from msgspec import ...` line"
    raise OpaqueFieldError(msg)


def main(argv: list[str]) -> int:
    if len(argv) != 2:  # SPEC and MODELS
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    spec_path, models_path = (Path(arg) for arg in argv)
    spec = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    models = Path(models_path)
    try:
        models.write_text(rewrite_models(models.read_text(encoding="utf-8"), opaque_fields(spec)), encoding="utf-8")
    except OpaqueFieldError as exc:
        print(f"opaque_fields: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
