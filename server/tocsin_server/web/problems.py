"""The one place where errors become RFC 9457 ``application/problem+json`` responses."""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final

import msgspec
from litestar import Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy.exc import DataError
from tocsin_wire import problems as kinds
from tocsin_wire.problems import PROBLEM_MEDIA_TYPE, kind_of_status, problem_type

from tocsin_server.db.health import (
    RETRY_AFTER_S,
    DatabaseUnavailableError,
    database_error_types,
    unavailable_reason,
)
from tocsin_server.errors import (
    ConflictError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    ServiceError,
    TooLargeError,
)
from tocsin_server.generated.models import FieldError, Problem
from tocsin_server.web.json_limits import BodyRejectedError
from tocsin_server.web.versioning import UnsupportedVersionError

if TYPE_CHECKING:
    from litestar import Request
    from litestar.types import ExceptionHandlersMap

_FIELD_IN_MESSAGE: Final = re.compile(r"field `(?P<name>[^`]+)`")
_MISSING_PARAMETER: Final = re.compile(r"Missing required (?P<source>\w+) parameter '(?P<name>[^']+)'")
_log = logging.getLogger("tocsin.server")

_SERVICE_STATUS: Final[dict[type[ServiceError], int]] = {
    NotFoundError: 404,
    ConflictError: 409,
    ForbiddenError: 403,
    TooLargeError: 413,
    InvalidError: 422,
}


def problem(
    status: int,
    detail: str,
    *,
    request: Request[Any, Any, Any],
    kind: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[Problem]:
    phrase = HTTPStatus(status).phrase
    body = Problem(
        type=problem_type(kind or kind_of_status(status)),
        title=phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=errors if errors is not None else msgspec.UNSET,
        **extra,
    )
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _validation_errors(exc: ValidationException) -> tuple[int, list[FieldError]]:
    """Litestar reports msgspec's first error; name the field even when msgspec only names it in prose."""
    items = exc.extra if isinstance(exc.extra, list) else []
    errors: list[FieldError] = []
    status = 400
    for item in items:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", exc.detail))
        key = str(item.get("key", ""))
        raw_source = item.get("source", "body")
        source = str(getattr(raw_source, "value", raw_source))
        if message == "'data'":  # Litestar's KeyError text when there is no body at all
            errors.append(FieldError(key="body", message="the request needs a JSON body", source="body"))
            continue
        if key in ("", "data") and (found := _FIELD_IN_MESSAGE.search(message)):
            key = found.group("name")
        elif key == "data":
            key = "body"
        if source == "body":
            status = 422  # well-formed JSON that does not fit the schema
        errors.append(FieldError(key=key or "body", message=message, source=source))
    if not errors and (missing := _MISSING_PARAMETER.search(exc.detail)):
        name = missing.group("name")
        errors = [
            FieldError(
                key=name,
                message=f"the {missing.group('source')} parameter {name!r} is required",
                source=missing.group("source"),
            )
        ]
    if "malformed" in exc.detail.lower():
        status = 400
        errors = errors or [FieldError(key="body", message=exc.detail, source="body")]
    return status, errors


def _on_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Problem]:
    status, errors = _validation_errors(exc)
    return problem(status, exc.detail, request=request, kind=kinds.VALIDATION, errors=errors)


def _on_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    return problem(exc.status_code, exc.detail, request=request, headers=exc.headers)


def _on_service(request: Request[Any, Any, Any], exc: ServiceError) -> Response[Problem]:
    if isinstance(exc, UnsupportedVersionError):
        return problem(
            400,
            exc.message,
            request=request,
            kind=kinds.UNSUPPORTED_VERSION,
            errors=[FieldError(key=exc.field or "", message=exc.message, source="header")],
            supported_versions=list(exc.supported_versions),
        )
    status, body = service_problem(exc, instance=request.url.path)
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE)


def service_problem(exc: ServiceError, *, instance: str) -> tuple[int, Problem]:
    """The status and problem body of a domain error: also used per item by bulk operations."""
    status = next((code for kind, code in _SERVICE_STATUS.items() if isinstance(exc, kind)), 400)
    phrase = HTTPStatus(status).phrase
    body = Problem(
        type=problem_type(kind_of_status(status)),
        title=phrase,
        status=status,
        detail=exc.message,
        instance=instance,
        errors=[FieldError(key=exc.field, message=exc.message)] if exc.field else msgspec.UNSET,
    )
    return status, body


def _on_rejected_body(request: Request[Any, Any, Any], exc: BodyRejectedError) -> Response[Problem]:
    errors = [FieldError(key="body", message=exc.message, source="body")]
    return problem(400, exc.message, request=request, kind=exc.kind, errors=errors)


def _on_data_error(request: Request[Any, Any, Any], exc: DataError) -> Response[Problem]:
    """A value passed validation but the database refused it (out of range, not representable)."""
    _log.warning("database refused a value on %s %s: %s", request.method, request.url.path, exc.orig)
    return problem(422, "a value in the request cannot be stored", request=request, kind=kinds.UNSTORABLE_VALUE)


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    _log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(HTTP_500_INTERNAL_SERVER_ERROR, "the server failed; the error is logged", request=request)


def _on_database_unavailable(request: Request[Any, Any, Any], exc: DatabaseUnavailableError) -> Response[Problem]:
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    return problem(503, exc.message, request=request, kind=kinds.DATABASE_UNAVAILABLE, headers=headers)


def _on_database_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """A database error: 503 when the probe after it (``DatabaseHealth.after_exception``) found the database
    unavailable or not the migrated one, logged once per outage there; otherwise a 500 like any other bug."""
    if (reason := unavailable_reason(request.scope)) is not None:
        return _on_database_unavailable(request, DatabaseUnavailableError(reason))
    return _on_unexpected(request, exc)


EXCEPTION_HANDLERS: Final[ExceptionHandlersMap] = {
    **dict.fromkeys(database_error_types(), _on_database_error),
    DatabaseUnavailableError: _on_database_unavailable,
    ValidationException: _on_validation,
    HTTPException: _on_http,
    ServiceError: _on_service,
    BodyRejectedError: _on_rejected_body,
    DataError: _on_data_error,
    Exception: _on_unexpected,
}

__all__ = ("EXCEPTION_HANDLERS", "PROBLEM_MEDIA_TYPE", "problem", "service_problem")
