"""Request bodies whose opaque JSON fields stay raw bytes: the server never decodes an event payload.

Litestar decodes a body to Python values and then converts them to the handler's type, so a
``msgspec.Raw`` field cannot survive its default path. ``RawBody[Model]`` is a tiny DTO that decodes the
body bytes once, straight into a twin of the generated ``Model`` whose opaque fields (``payload``, XCom
values) are ``msgspec.Raw``: constraints, defaults and strictness come from the generated model, and the
published schema is the generated model's own, so the contract gate still compares it with the spec.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Generator, Mapping
from typing import Any, ClassVar, Final

import msgspec
from litestar.dto import AbstractDTO
from litestar.exceptions import ValidationException
from litestar.typing import FieldDefinition

if typing.TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.dto.data_structures import DTOFieldDefinition
    from litestar.openapi.spec import Reference, Schema

_RAW_FIELDS: Final = frozenset({"payload", "xcoms", "extra"})
"""Fields holding JSON the server stores as received and never decodes."""
_OBJECTS_KEY: Final = "__raw_objects__"
"""Class attribute of a twin: its raw fields that the spec types as JSON objects."""
_AT_PATH: Final = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)


def _substitute(annotation: Any, replacements: Mapping[type, type]) -> Any:
    """``annotation`` with every struct named in ``replacements`` swapped, through Annotated, unions and lists."""
    if isinstance(annotation, type) and annotation in replacements:
        return replacements[annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner, *extras = typing.get_args(annotation)
        return typing.Annotated[(_substitute(inner, replacements), *extras)]
    if origin is list:
        return list[_substitute(typing.get_args(annotation)[0], replacements)]  # type: ignore[misc]
    if origin in (typing.Union, types.UnionType):
        args = tuple(_substitute(arg, replacements) for arg in typing.get_args(annotation))
        return typing.Union[args]  # noqa: UP007 - built from a tuple
    return annotation


def _is_object(annotation: Any) -> bool:
    """Whether the spec types the field as an object (``dict[...]``, maybe annotated, optional or unset)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_object(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        kinds = [arg for arg in typing.get_args(annotation) if arg not in (type(None), msgspec.UnsetType)]
        return len(kinds) == 1 and _is_object(kinds[0])
    return origin is dict or annotation is dict


def raw_twin(model: type[msgspec.Struct], replacements: Mapping[type, type] | None = None) -> type[msgspec.Struct]:
    """A struct like ``model`` whose opaque JSON fields decode to ``msgspec.Raw``.

    A raw field the spec types as an object is still checked to be one (``check_raw_objects``), by its first
    byte: msgspec has already parsed the raw value as JSON to find its end, so it decodes nothing more.
    """
    fields: list[tuple[str, Any, Any] | tuple[str, Any]] = []
    objects = frozenset(i.name for i in msgspec.structs.fields(model) if i.name in _RAW_FIELDS and _is_object(i.type))
    for info in msgspec.structs.fields(model):
        annotation = msgspec.Raw if info.name in _RAW_FIELDS else _substitute(info.type, replacements or {})
        if info.name in _RAW_FIELDS and info.default is not msgspec.NODEFAULT:
            fields.append((info.name, annotation | msgspec.UnsetType, msgspec.UNSET))
        elif info.default is not msgspec.NODEFAULT:
            fields.append((info.name, annotation, info.default))
        else:
            fields.append((info.name, annotation))
    return msgspec.defstruct(
        model.__name__, fields, kw_only=True, forbid_unknown_fields=True, namespace={_OBJECTS_KEY: objects}
    )


def check_raw_objects(value: Any, path: str = "") -> None:
    """Raise a validation error naming the first raw field of ``value`` (a decoded twin) that should hold a
    JSON object and holds something else (a string, a list, a number)."""
    if not isinstance(value, msgspec.Struct):
        return
    for name in getattr(type(value), _OBJECTS_KEY, ()):
        raw = getattr(value, name)
        if isinstance(raw, msgspec.Raw) and not bytes(raw).startswith(b"{"):
            key = f"{path}.{name}" if path else name
            msg = f"Expected `object`, got `{_json_kind(bytes(raw))}`"
            raise ValidationException(f"Validation failed: {msg} - at `$.{key}`", extra=[_item(msg, key)])
    for name in value.__struct_fields__:
        child = getattr(value, name)
        here = f"{path}.{name}" if path else name
        if isinstance(child, list):
            for index, item in enumerate(child):
                check_raw_objects(item, f"{here}[{index}]")
        else:
            check_raw_objects(child, here)


def _json_kind(raw: bytes) -> str:
    first = raw[:1]
    kinds = {b"[": "array", b'"': "str", b"t": "bool", b"f": "bool", b"n": "null"}
    return kinds.get(first, "number")


def _item(message: str, key: str) -> dict[str, str]:
    return {"message": message, "key": key, "source": "body"}


def _validation_error(exc: msgspec.ValidationError) -> ValidationException:
    match = _AT_PATH.match(str(exc))
    assert match is not None
    path = (match.group("path") or "").lstrip(".")
    message = match.group("message")
    return ValidationException(f"Validation failed: {exc}", extra=[{"message": message, "key": path, "source": "body"}])


class RawBody(AbstractDTO[Any]):
    """Decodes the body into ``decode_type`` in one pass; publishes ``schema_type`` as the request schema."""

    decode_type: ClassVar[type[msgspec.Struct]]
    schema_type: ClassVar[type[msgspec.Struct]]

    @classmethod
    def of(cls, schema_type: type[msgspec.Struct], decode_type: type[msgspec.Struct]) -> type[RawBody]:
        return type(
            f"RawBody[{schema_type.__name__}]",
            (cls,),
            {"decode_type": decode_type, "schema_type": schema_type, "model_type": decode_type},
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
        return schema_creator.for_field_definition(
            FieldDefinition.from_annotation(cls.schema_type, kwarg_definition=field_definition.kwarg_definition)
        )

    def decode_bytes(self, value: bytes) -> Any:
        try:
            decoded = msgspec.json.decode(value, type=self.decode_type)
        except msgspec.ValidationError as exc:
            raise _validation_error(exc) from None
        except msgspec.DecodeError as exc:
            msg = f"the body is malformed: {exc}"
            raise ValidationException(msg, extra=[{"message": msg, "key": "body", "source": "body"}]) from None
        check_raw_objects(decoded)
        return decoded

    def decode_builtins(self, value: dict[str, Any]) -> Any:
        msg = "a raw JSON body cannot come from a form"
        raise ValidationException(msg)
