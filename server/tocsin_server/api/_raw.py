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


def raw_twin(model: type[msgspec.Struct], replacements: Mapping[type, type] | None = None) -> type[msgspec.Struct]:
    """A struct like ``model`` whose opaque JSON fields decode to ``msgspec.Raw``."""
    fields: list[tuple[str, Any, Any] | tuple[str, Any]] = []
    for info in msgspec.structs.fields(model):
        annotation = msgspec.Raw if info.name in _RAW_FIELDS else _substitute(info.type, replacements or {})
        if info.name in _RAW_FIELDS and info.default is not msgspec.NODEFAULT:
            fields.append((info.name, annotation | msgspec.UnsetType, msgspec.UNSET))
        elif info.default is not msgspec.NODEFAULT:
            fields.append((info.name, annotation, info.default))
        else:
            fields.append((info.name, annotation))
    return msgspec.defstruct(model.__name__, fields, kw_only=True, forbid_unknown_fields=True)


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
            return msgspec.json.decode(value, type=self.decode_type)
        except msgspec.ValidationError as exc:
            raise _validation_error(exc) from None
        except msgspec.DecodeError as exc:
            msg = f"the body is malformed: {exc}"
            raise ValidationException(msg, extra=[{"message": msg, "key": "body", "source": "body"}]) from None

    def decode_builtins(self, value: dict[str, Any]) -> Any:
        msg = "a raw JSON body cannot come from a form"
        raise ValidationException(msg)
