"""The one place where errors become RFC 9457 ``application/problem+json`` responses."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final

import msgspec
from litestar import Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy.exc import DataError
from tocsin_wire import problems as kinds
from tocsin_wire.problems import PROBLEM_MEDIA_TYPE, kind_of_status, problem_type

from tocsin_server.db.cipher import KwargsCipherError
from tocsin_server.db.health import (
    RETRY_AFTER_S,
    DatabaseUnavailableError,
    database_error_types,
    unavailable_reason,
)
from tocsin_server.errors import (
    ConflictError,
    ForbiddenError,
    HistoryExpiredError,
    InvalidError,
    NotFoundError,
    ServiceError,
    TooLargeError,
)
from tocsin_server.generated.models import FieldError, HistoryExpiredProblem, Problem
from tocsin_server.web.body_errors import BodyMismatchError, MalformedBodyError
from tocsin_server.web.framework_text import litestar_missing_parameter
from tocsin_server.web.json_limits import BodyRejectedError
from tocsin_server.web.versioning import UnsupportedVersionError

if TYPE_CHECKING:
    from litestar import Request
    from litestar.types import ExceptionHandlersMap

_log = logging.getLogger("tocsin.server")
_BODY_ARGUMENT: Final = "data"
"""The handler argument Litestar puts the body in; it validates it itself only when there was no body."""

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
    """The status and named fields of a validation error, by its type and Litestar's structured ``extra``.

    Every body goes through our decoder, whose errors say by class whether the body was malformed (400) or
    did not fit the schema (422, naming the field). Litestar's own errors are about parameters (400, each
    named in ``extra``), about its ``data`` argument when there was no body to decode at all, or about a
    missing parameter, which Litestar names only in its message (read by ``framework_text``).
    """
    if isinstance(exc, MalformedBodyError):
        return 400, [FieldError(key="body", message=exc.detail, source="body")]
    if isinstance(exc, BodyMismatchError):
        return 422, [FieldError(key=exc.key or "body", message=exc.message, source="body")]
    errors: list[FieldError] = []
    status = 400
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if not isinstance(item, dict):
            continue
        key = str(item.get("key", ""))
        raw_source = item.get("source", "body")
        source = str(getattr(raw_source, "value", raw_source))
        if key == _BODY_ARGUMENT and source == "body":
            errors.append(FieldError(key="body", message="the request needs a JSON body", source="body"))
            continue
        if source == "body":
            status = 422  # well-formed JSON that does not fit the schema
        errors.append(FieldError(key=key or "body", message=str(item.get("message", exc.detail)), source=source))
    if not errors and (missing := litestar_missing_parameter(exc.detail)) is not None:
        source, name = missing
        errors = [FieldError(key=name, message=f"the {source} parameter {name!r} is required", source=source)]
    return status, errors


def _wire_name(request: Request[Any, Any, Any], error: FieldError) -> FieldError:
    """A parameter error named as the client sent it: Litestar names the handler's argument (``ti_state``), while
    the contract's name is its alias (``QueryParameter(name="state")``, ``state`` being a reserved argument)."""
    if error.source not in ("query", "path", "header"):
        return error
    handler = request.scope.get("route_handler")
    parameter = getattr(getattr(handler, "parsed_fn_signature", None), "parameters", {}).get(error.key)
    definition = getattr(parameter, "kwarg_definition", None)
    alias = getattr(definition, error.source, None) or getattr(definition, "name", None)
    if not isinstance(alias, str) or alias == error.key:
        return error
    return FieldError(key=alias, message=error.message, source=error.source)


def _on_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Problem]:
    status, errors = _validation_errors(exc)
    errors = [_wire_name(request, error) for error in errors]
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
    if isinstance(exc, HistoryExpiredError):
        expired = HistoryExpiredProblem(
            type=problem_type(kinds.HISTORY_EXPIRED),
            title=HTTPStatus.GONE.phrase,
            status=410,
            detail=exc.message,
            instance=request.url.path,
            oldest_version=exc.oldest_version,
        )
        return Response(expired, status_code=410, media_type=PROBLEM_MEDIA_TYPE)
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


def _on_undecryptable(request: Request[Any, Any, Any], exc: KwargsCipherError) -> Response[Problem]:
    """A stored secret sealed with a key the server no longer has: the operator's configuration, said in one log
    line and in the answer, never a traceback."""
    _log.error("%s %s: %s (TOCSIN_TRIGGER_KWARGS_KEYS)", request.method, request.url.path, exc)
    detail = (
        "a stored secret cannot be decrypted with the server's keys (TOCSIN_TRIGGER_KWARGS_KEYS); "
        "the operator must configure the key that sealed it"
    )
    return problem(HTTP_500_INTERNAL_SERVER_ERROR, detail, request=request)


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
    KwargsCipherError: _on_undecryptable,
    Exception: _on_unexpected,
}

__all__ = ("EXCEPTION_HANDLERS", "PROBLEM_MEDIA_TYPE", "problem", "service_problem")
