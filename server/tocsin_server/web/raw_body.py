"""The one decoder of JSON request bodies: strict as the spec, opaque fields kept raw, integers as JSON Schema.

Litestar decodes a body to Python values and then converts them to the handler's type in lax mode (``"5432"``
passes as an integer), and a ``msgspec.Raw`` field cannot survive that path. ``RawBody[Model]`` is a tiny DTO
that decodes the body bytes once, strictly, straight into a twin of the generated ``Model``:

- opaque fields stay ``msgspec.Raw``, never decoded: the spec marks them (``x-tocsin-opaque``) and codegen types
  them ``Raw`` in the generated server model (tools/opaque_fields.py), so a twin finds them by type, never by
  name; one the spec types as an object carries that in its ``Meta`` and is checked to be one;
- integer fields take any integral JSON number, as JSON Schema does (``1.0`` and ``1e0`` are the integer 1;
  ``1.5`` is not, and is refused naming the field): msgspec's strict mode refuses ``1.0`` for an ``int``, so
  the twin reads ``int | float`` under the same constraints and the float is turned back into an ``int``.

Constraints, defaults and strictness come from the generated model, and the published schema is the generated
model's own, so the contract gate still compares it with the spec. Every operation with a body uses it
(``json_body``), so one rule holds everywhere.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Generator, Mapping
from typing import Any, ClassVar, Final

import msgspec
from litestar.dto import AbstractDTO
from litestar.exceptions import ValidationException
from litestar.openapi.spec import Schema
from litestar.typing import FieldDefinition

from tocsin_server.web.body_errors import BodyMismatchError, MalformedBodyError
from tocsin_server.web.framework_text import msgspec_error_location, msgspec_named_field

if typing.TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.dto.data_structures import DTOFieldDefinition
    from litestar.openapi.spec import Reference

_OBJECTS_KEY: Final = "__raw_objects__"
"""Class attribute of a twin: its raw fields that the spec types as JSON objects."""
_INTEGERS_KEY: Final = "__integer_fields__"
"""Class attribute of a twin: its fields that hold integers (or lists of them), read leniently as floats too."""
_MAX_INTEGRAL_FLOAT: Final = 2**53
"""Integral floats up to this are exact integers; a larger one may not be the integer the client wrote."""
_TWINS: dict[type, type[msgspec.Struct]] = {}


def _substitute(annotation: Any, replacements: Mapping[type, type]) -> Any:
    """``annotation`` as a twin reads it, through Annotated, unions and lists: every struct swapped for its twin
    (the one in ``replacements``, else a plain ``json_twin``), every ``int`` read as ``int | float``."""
    if isinstance(annotation, type):
        return _leaf(annotation, replacements)
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner, *extras = typing.get_args(annotation)
        if inner is int:  # the constraints (ge, le) hold for the float reading too
            return typing.Annotated[(int, *extras)] | typing.Annotated[(float, *extras)]
        return typing.Annotated[(_substitute(inner, replacements), *extras)]
    if origin is list:
        return list[_substitute(typing.get_args(annotation)[0], replacements)]  # type: ignore[misc]
    if origin in (typing.Union, types.UnionType):
        args = tuple(_substitute(arg, replacements) for arg in typing.get_args(annotation))
        return typing.Union[args]  # noqa: UP007 - built from a tuple
    return annotation


def _value_arm(annotation: Any) -> Any:
    """The one value type of a field annotation, without its ``| None`` or ``| UnsetType`` arms."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kinds = [arg for arg in typing.get_args(annotation) if arg not in (type(None), msgspec.UnsetType)]
        return kinds[0] if len(kinds) == 1 else annotation
    return annotation


def _is_raw(annotation: Any) -> bool:
    """Whether the generated model types the field ``msgspec.Raw`` (the spec marked it opaque)."""
    arm = _value_arm(annotation)
    if typing.get_origin(arm) is typing.Annotated:
        arm = typing.get_args(arm)[0]
    return arm is msgspec.Raw


def _is_raw_object(annotation: Any) -> bool:
    """Whether a raw field must hold a JSON object: codegen leaves the spec's ``type: object`` in its ``Meta``
    (``extra_json_schema={"extra": {"type": "object"}}``, which Litestar also publishes)."""
    arm = _value_arm(annotation)
    if not _is_raw(annotation) or typing.get_origin(arm) is not typing.Annotated:
        return False
    metas = [extra for extra in typing.get_args(arm)[1:] if isinstance(extra, msgspec.Meta)]
    return any((meta.extra_json_schema or {}).get("extra", {}).get("type") == "object" for meta in metas)


def _leaf(annotation: type, replacements: Mapping[type, type]) -> Any:
    if annotation in replacements:
        return replacements[annotation]
    if issubclass(annotation, msgspec.Struct):
        return json_twin(annotation)
    return int | float if annotation is int else annotation


def _holds_integers(annotation: Any) -> bool:
    if annotation is int:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Annotated, list, typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        return any(_holds_integers(arg) for arg in (args[:1] if origin is typing.Annotated else args))
    return False


def json_twin(model: type[msgspec.Struct]) -> type[msgspec.Struct]:
    """The twin of ``model`` (integers read as JSON Schema reads them, opaque fields raw); one per model."""
    twin = _TWINS.get(model)
    if twin is None:
        twin = _TWINS[model] = _twin(model, replacements={})
    return twin


def raw_twin(model: type[msgspec.Struct], replacements: Mapping[type, type] | None = None) -> type[msgspec.Struct]:
    """A twin of ``model`` with the given twins of its nested structs; its opaque fields decode to ``msgspec.Raw``.

    Which fields are opaque is the contract's word: the generated model already types them ``Raw``. A raw
    field the spec types as an object is still checked to be one (``finish``), by its first byte: msgspec has
    already parsed the raw value as JSON to find its end, so it decodes nothing more.
    """
    return _twin(model, replacements=replacements or {})


def _twin(model: type[msgspec.Struct], *, replacements: Mapping[type, type]) -> type[msgspec.Struct]:
    fields: list[tuple[str, Any, Any] | tuple[str, Any]] = []
    infos = msgspec.structs.fields(model)
    objects = frozenset(i.name for i in infos if _is_raw_object(i.type))
    integers = frozenset(i.name for i in infos if _holds_integers(i.type))
    for info in infos:
        annotation = _substitute(info.type, replacements)
        if info.default is not msgspec.NODEFAULT:
            fields.append((info.name, annotation, info.default))
        else:
            fields.append((info.name, annotation))
    namespace = {_OBJECTS_KEY: objects, _INTEGERS_KEY: integers}
    # A subclass: services may test ``isinstance(body, Model)``, and a tagged union's tags are inherited.
    return msgspec.defstruct(
        model.__name__, fields, bases=(model,), kw_only=True, forbid_unknown_fields=True, namespace=namespace
    )


def _integral(value: Any, key: str) -> Any:
    if isinstance(value, float):
        if value.is_integer() and abs(value) <= _MAX_INTEGRAL_FLOAT:
            return int(value)
        msg = "Expected `int`, got `float`"
        raise BodyMismatchError(f"Validation failed: {msg} - at `$.{key}`", key=key, message=msg)
    if isinstance(value, list):
        return [_integral(item, f"{key}[{index}]") for index, item in enumerate(value)]
    return value


def finish(value: Any, path: str = "") -> None:
    """Complete a decoded twin in place: integral floats in integer fields become ints (another float is a
    validation error naming it), and a raw field that should hold a JSON object and holds something else (a
    string, a list, a number) is a validation error naming it."""
    if not isinstance(value, msgspec.Struct):
        return
    for name in getattr(type(value), _INTEGERS_KEY, ()):
        setattr(value, name, _integral(getattr(value, name), f"{path}.{name}" if path else name))
    for name in getattr(type(value), _OBJECTS_KEY, ()):
        raw = getattr(value, name)
        if isinstance(raw, msgspec.Raw) and not bytes(raw).startswith(b"{"):
            key = f"{path}.{name}" if path else name
            msg = f"Expected `object`, got `{_json_kind(bytes(raw))}`"
            raise BodyMismatchError(f"Validation failed: {msg} - at `$.{key}`", key=key, message=msg)
    for name in value.__struct_fields__:
        child = getattr(value, name)
        here = f"{path}.{name}" if path else name
        if isinstance(child, list):
            for index, item in enumerate(child):
                finish(item, f"{here}[{index}]")
        else:
            finish(child, here)


def _json_kind(raw: bytes) -> str:
    first = raw[:1]
    kinds = {b"[": "array", b'"': "str", b"t": "bool", b"f": "bool", b"n": "null"}
    return kinds.get(first, "number")


def _validation_error(exc: msgspec.ValidationError) -> BodyMismatchError:
    """msgspec says where only in its message: the adapter reads it (a top-level error about one field names
    that field, ``value`` rather than the whole body)."""
    message, path = msgspec_error_location(exc)
    key = path or msgspec_named_field(message) or ""
    return BodyMismatchError(f"Validation failed: {exc}", key=key, message=message)


def json_body(schema: Any) -> type[RawBody]:
    """The DTO of an operation whose body is ``schema`` (a generated struct or union of them), no raw fields."""
    return RawBody.of(schema, _substitute(schema, {}))


class RawBody(AbstractDTO[Any]):
    """Decodes the body into ``decode_type`` in one pass; publishes ``schema_type`` as the request schema.

    ``rule``: a rule across fields (``if``/``then``) that the generated model cannot carry (msgspec has no such
    constraint) and a domain service enforces; it is published on the body's schema, where the contract gate
    compares it with the spec's.
    """

    decode_type: ClassVar[Any]
    schema_type: ClassVar[Any]
    rule: ClassVar[Schema | None] = None

    @classmethod
    def of(cls, schema_type: Any, decode_type: Any, rule: Schema | None = None) -> type[RawBody]:
        return type(
            f"RawBody[{getattr(schema_type, '__name__', 'union')}]",
            (cls,),
            {"decode_type": decode_type, "schema_type": schema_type, "model_type": decode_type, "rule": rule},
        )

    @classmethod
    def generate_field_definitions(cls, model_type: type[Any]) -> Generator[DTOFieldDefinition, None, None]:
        yield from ()

    @classmethod
    def detect_nested_field(cls, field_definition: FieldDefinition) -> bool:
        return False

    @classmethod
    def create_for_field_definition(
        cls, field_definition: FieldDefinition, handler_id: str, backend_cls: Any = None
    ) -> None:
        return None

    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: SchemaCreator
    ) -> Reference | Schema:
        published = schema_creator.for_field_definition(
            FieldDefinition.from_annotation(cls.schema_type, kwarg_definition=field_definition.kwarg_definition)
        )
        if cls.rule is not None:
            schema = (
                published
                if isinstance(published, Schema)
                else schema_creator.schema_registry.from_reference(published).schema
            )
            schema.schema_if, schema.then, schema.schema_else = cls.rule.schema_if, cls.rule.then, cls.rule.schema_else
        return published

    def decode_bytes(self, value: bytes) -> Any:
        try:
            decoded = msgspec.json.decode(value, type=self.decode_type)
        except msgspec.ValidationError as exc:
            raise _validation_error(exc) from None
        except msgspec.DecodeError as exc:
            raise MalformedBodyError(f"the body is malformed: {exc}") from None
        finish(decoded)
        return decoded

    def decode_builtins(self, value: dict[str, Any]) -> Any:
        msg = "a raw JSON body cannot come from a form"
        raise ValidationException(msg)
