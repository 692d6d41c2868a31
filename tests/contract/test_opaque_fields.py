"""Opaque fields are the contract's word (issue 8, item 7): the spec marks them ``x-tocsin-opaque``, codegen
types them ``msgspec.Raw`` in the server's models only, and the body decoder finds them by type. Before, the
decoder made any field named ``payload``, ``xcoms`` or ``extra`` raw, so a new field called ``extra`` would
silently have been kept undecoded."""

from __future__ import annotations

import importlib.util
import sys
import types
import typing
from pathlib import Path
from typing import Any

import msgspec
import pytest
from tocsin_client.generated import models as client_models
from tocsin_server.generated import models as server_models
from tocsin_server.web.raw_body import raw_twin
from tocsin_server.web.spec import load_spec
from tocsin_server.web.versioning import LATEST

ROOT = Path(__file__).resolve().parents[2]


def _tool() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("opaque_fields", ROOT / "tools" / "opaque_fields.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


opaque_fields = _tool()


def _value_type(annotation: Any) -> Any:
    """The field's type without ``Annotated`` metadata and without its ``None`` / ``UnsetType`` arms."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        arms = [a for a in typing.get_args(annotation) if a not in (type(None), msgspec.UnsetType)]
        assert len(arms) == 1, annotation
        annotation = arms[0]
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _field_type(model: type[msgspec.Struct], name: str) -> Any:
    [info] = [f for f in msgspec.structs.fields(model) if f.name == name]
    return _value_type(info.type)


MARKED = sorted(
    (schema, field) for schema, fields in opaque_fields.opaque_fields(load_spec(LATEST)).items() for field in fields
)


def test__the_spec_marks_the_fields_the_server_must_never_decode() -> None:
    assert set(MARKED) >= {
        ("TriggerEventBody", "payload"),
        ("TriggerEventBody", "xcoms"),
        ("TriggerEventItem", "payload"),
        ("TriggerEventItem", "xcoms"),
        ("TriggerLogLine", "extra"),
        ("StoredTriggerLogLine", "extra"),  # answers serve them as stored
        ("AssetEvent", "payload"),
    }


@pytest.mark.parametrize(("schema", "field"), MARKED)
def test__a_marked_field_is_raw_in_the_server_model_and_decoded_in_the_client_model(schema: str, field: str) -> None:
    assert _field_type(getattr(server_models, schema), field) is msgspec.Raw
    assert _field_type(getattr(client_models, schema), field) is not msgspec.Raw  # the client reads payloads


def test__an_unmarked_field_named_extra_is_not_raw() -> None:
    """``ConnectionBody.extra`` is a string the server decodes and checks; the name alone makes nothing raw."""
    spec_field = load_spec(LATEST)["components"]["schemas"]["ConnectionBody"]["properties"]["extra"]
    assert opaque_fields.MARK not in spec_field
    assert _field_type(server_models.ConnectionBody, "extra") is not msgspec.Raw
    twin = raw_twin(server_models.ConnectionBody)
    assert _field_type(twin, "extra") is not msgspec.Raw
    body: Any = msgspec.json.decode(b'{"conn_type": "postgres", "extra": "{\\"sslmode\\": \\"require\\"}"}', type=twin)
    assert body.extra == '{"sslmode": "require"}'


def test__a_raw_field_is_kept_byte_for_byte_and_an_object_one_is_checked() -> None:
    twin = raw_twin(server_models.TriggerEventBody)
    body: Any = msgspec.json.decode(b'{"event_id": "e1", "payload": {"b" : 1,"a":[ 2 ]}, "xcoms": {"k": 1}}', type=twin)
    assert bytes(body.payload) == b'{"b" : 1,"a":[ 2 ]}'
    assert bytes(body.xcoms) == b'{"k": 1}'
    assert getattr(twin, "__raw_objects__") == frozenset({"xcoms"})  # noqa: B009 - a class attribute by name


# --- the codegen step itself: marks, never names ----------------------------------------------------------------

_GENERATED = """\
from typing import Annotated, Any

from msgspec import UNSET, Meta, UnsetType
from msgspec import Struct as _Struct


class Thing(_Struct, kw_only=True):
    payload: Annotated[Any, Meta(description="marked, any JSON")]
    extra: Annotated[dict[str, Any], Meta(description="unmarked object")] | UnsetType = UNSET
    blob: (
        Annotated[dict[str, Any], Meta(description="marked object")]
        | UnsetType
    ) = UNSET
    note: Any | None = None
"""


def _spec(**props: dict[str, Any]) -> dict[str, Any]:
    return {"components": {"schemas": {"Thing": {"type": "object", "properties": props}}}}


def _load(source: str) -> Any:
    module = types.ModuleType("opaque_fields_generated")  # msgspec resolves annotations in the class's module
    sys.modules[module.__name__] = module
    exec(compile(source, "<generated>", "exec"), module.__dict__)  # the module the step just wrote
    return module.Thing


def test__codegen_step_makes_marked_fields_raw_and_leaves_a_field_named_extra_alone() -> None:
    spec = _spec(
        payload={opaque_fields.MARK: True},
        extra={"type": "object"},
        blob={"type": "object", opaque_fields.MARK: True},
        note={opaque_fields.MARK: True},
    )
    thing = _load(opaque_fields.rewrite_models(_GENERATED, opaque_fields.opaque_fields(spec)))
    assert _field_type(thing, "payload") is msgspec.Raw
    assert _field_type(thing, "blob") is msgspec.Raw
    assert _field_type(thing, "note") is msgspec.Raw
    assert _field_type(thing, "extra") == dict[str, Any]
    decoded = msgspec.json.decode(b'{"payload": [1], "extra": {"a": 1}, "blob": {"b": 2}}', type=thing)
    assert decoded.extra == {"a": 1}
    assert bytes(decoded.payload) == b"[1]"
    assert decoded.note is None
    # The spec's ``type: object`` survives in the Meta, for the published schema and the object check.
    blob = next(f for f in msgspec.structs.fields(thing) if f.name == "blob").type
    [meta] = [m for m in typing.get_args(typing.get_args(blob)[0])[1:] if isinstance(m, msgspec.Meta)]
    assert meta.extra_json_schema == opaque_fields.OBJECT_SCHEMA


def test__codegen_step_fails_on_a_mark_the_models_do_not_have() -> None:
    spec = _spec(missing={opaque_fields.MARK: True})
    with pytest.raises(opaque_fields.OpaqueFieldError, match=r"Thing\.missing"):
        opaque_fields.rewrite_models(_GENERATED, opaque_fields.opaque_fields(spec))


def test__codegen_step_without_marks_changes_nothing() -> None:
    assert opaque_fields.rewrite_models(_GENERATED, opaque_fields.opaque_fields(_spec(extra={"type": "object"}))) == (
        _GENERATED
    )
