"""What every route module shares: parameter types from the spec, access rules and documented error responses."""

from __future__ import annotations

from typing import Annotated, Any, Final, get_args

import msgspec
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import PathParameter, QueryParameter
from litestar.types import Guard
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin_server.generated.models import DagIdValue, IdentifierValue, Problem, RunIdValue, TaskIdValue
from tocsin_server.web.auth import JOB_ACCESS, Access, access


def constraints(alias: Any) -> dict[str, Any]:
    """The string constraints of a generated alias (``Annotated[str, Meta(...)]``) as parameter kwargs.

    Litestar does not read msgspec ``Meta`` on parameters, so the spec's constraints are carried over from
    the generated models: a bad value is a 400 naming the parameter, and the live schema matches the spec.
    """
    meta = next(arg for arg in get_args(alias) if isinstance(arg, msgspec.Meta))
    return {"pattern": meta.pattern, "min_length": meta.min_length, "max_length": meta.max_length}


DbSession = NamedDependency[AsyncSession]
"""The request's transaction: committed before the answer is sent, rolled back on any error."""

Identifier = Annotated[str, PathParameter(**constraints(IdentifierValue))]
DagId = Annotated[str, PathParameter(**constraints(DagIdValue))]
RunId = Annotated[str, PathParameter(**constraints(RunIdValue))]
TaskId = Annotated[str, PathParameter(**constraints(TaskIdValue))]
DagIdQuery = Annotated[str, QueryParameter(**constraints(DagIdValue))]
RunIdQuery = Annotated[str, QueryParameter(**constraints(RunIdValue))]
DagIdFilter = Annotated[str | None, QueryParameter(**constraints(DagIdValue))]
RunIdFilter = Annotated[str | None, QueryParameter(**constraints(RunIdValue))]
Limit = Annotated[int, QueryParameter(ge=1, le=1000)]
Offset = Annotated[int, QueryParameter(ge=0, le=1_000_000_000)]
MapIndex = Annotated[int, QueryParameter(ge=-1, le=1_000_000)]
MAX_ID: Final = 2**53 - 1
"""Ids stay within what JSON numbers carry exactly everywhere (JavaScript's safe integers)."""

# Access rules, a route's ``opt`` (checked by the bearer middleware with the token, not by Litestar guards)
RUNTIME_READ: Final[dict[str, Access]] = access("worker", "admin", task_instance=True)
RUNTIME_WRITE: Final[dict[str, Access]] = access("worker", "admin")
ADMIN: Final[dict[str, Access]] = access("admin")
TRIGGERER: Final[dict[str, Access]] = access("triggerer")
JOB: Final[dict[str, Access]] = JOB_ACCESS
"""A job-scoped token (``job:<id>``): the server reads the job from the token, never from a body."""

_DESCRIPTIONS: Final = {
    400: "The request is malformed (bad JSON, a bad parameter or an unknown API version).",
    401: "No token, or an expired, tampered or foreign one.",
    403: "The token lacks the scope this operation needs.",
    404: "The resource does not exist, or the operation does not exist in the requested version.",
    409: "The request conflicts with the current state.",
    413: "The body is larger than the server accepts.",
    414: "The request URL is longer than the server accepts (answered by the HTTP layer).",
    431: "The request's header fields are larger than the server accepts (answered by the HTTP layer).",
    429: "Too many requests of this kind at once; retry after `Retry-After` seconds.",
    422: "The body is well-formed JSON but does not fit the schema; `errors` names the fields.",
    503: "The server cannot serve now (for example, the database is unreachable).",
    500: "The server failed on an error it did not expect; the error is logged.",
}


def strict_query(*names: str) -> Guard:
    """Reject a repeated or literal ``null`` value of single-valued optional query parameters.

    Litestar reads ``?state=null`` as "no filter" for an optional enum and takes the first of repeated values;
    a client that sent either meant something else, so it gets a 400 naming the parameter.
    """

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        for name in names:
            values = connection.query_params.getall(name, [])
            if len(values) > 1 or "null" in values:
                msg = f"query parameter {name!r} takes one value from the documented set"
                raise ValidationException(msg, extra=[{"key": name, "message": msg, "source": "query"}])

    return guard


EVERY: Final = (414, 431)
"""Every request can get these, before any operation is chosen (``tocsin_server.web.http_limits``)."""
UNEXPECTED: Final = 500
"""And any operation this one, on an error nobody expected (``tocsin_server.web.problems``: problem+json)."""


def problems(*codes: int) -> dict[int, ResponseSpec]:
    """Documented problem+json responses for ``codes``, and for the statuses every request can get."""
    return {
        code: ResponseSpec(
            data_container=Problem,
            media_type="application/problem+json",
            description=_DESCRIPTIONS[code],
            generate_examples=False,
        )
        for code in (*codes, *EVERY, UNEXPECTED)
    }


AUTHED: Final = (400, 401, 403, 503)
"""Every authenticated operation can answer these (each one uses the database, so 503 while it is away)."""
WITH_BODY: Final = (*AUTHED, 413, 422)
"""And these when it takes a body."""
