"""Dated API versions chosen per request by the ``Tocsin-API-Version`` header.

Handlers are written for the latest version only. Older versions are served by the declared changes in
``VERSION_CHANGES`` (the Cadwyn/Stripe pattern, without their code): each dated version lists what it changed,
as small declarations, and one middleware applies them to older requests and responses:

- ``OperationAdded``: the operation did not exist before; older requests get 404.
- ``RequestFieldAdded``: a request body field that older versions did not have; an older request that sends
  it gets 422 (it was an unknown field then), and one that does not is upgraded with the default, if any.
- ``ResponseFieldAdded``: a response field that older versions did not have; it is removed from their answers
  (from the answer itself, or from every item of one of its top-level lists).
- ``QueryParameterAdded``: a query parameter that older versions did not declare; it is taken out of their
  requests before the handler sees them (they ignored it then, and still do).
- ``UnknownQueryParametersRefused``: from this version on, a query parameter the operation does not declare in
  this version's file is a 400 naming it; older versions ignore such parameters.
- ``ResponseFieldRemoved``: a response field that this version dropped (a secret); older answers get it back
  with a fixed value that fits their schema (``password: null``), never the secret itself.
- ``ResponsesDocumented``: statuses every operation could already answer, documented from this version on;
  nothing changes on the wire, only the older files do not list them.

Bodies are rewritten at the top level only, as raw JSON: values (event payloads) are never decoded. The same
declarations also turn the latest spec into each older file's shape (``downgrade_schemas``), which the contract
tests compare, so the code and the frozen files cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

import msgspec
from litestar.enums import ScopeType
from litestar.exceptions import NotFoundException
from litestar.middleware import ASGIMiddleware

from tocsin_server.errors import InvalidError
from tocsin_server.web.body_errors import BodyMismatchError
from tocsin_server.web.json_limits import check_json_body
from tocsin_server.web.query_rules import declared_query_parameters, refuse_unknown_query, without_query_parameters

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

VERSION_HEADER: Final = "Tocsin-API-Version"
VERSIONS: Final = ("2026-06-01", "2026-11-01", "2026-12-01", "2026-12-15", "2027-01-01")
"""Every supported version, oldest first. Each has a frozen spec file in openapi/versions/."""
LATEST: Final = VERSIONS[-1]

_HEADER_KEY: Final = VERSION_HEADER.lower().encode()
_SCOPE_KEY: Final = "tocsin.api_version"
_SUPPORTED: Final = frozenset(VERSIONS)
_TOP_LEVEL: Final = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ITEMS: Final = msgspec.json.Decoder(list[dict[str, msgspec.Raw]])
_ENCODER: Final = msgspec.json.Encoder()


# -- the declared changes --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OperationAdded:
    """``operation_id`` exists from this version on; older versions answer 404."""

    operation_id: str


@dataclass(frozen=True, slots=True)
class RequestFieldAdded:
    """The request body of ``operation_id`` (schema ``schema``) gained ``field``; older requests get ``default``."""

    operation_id: str
    schema: str
    field: str
    default: Any = msgspec.UNSET


@dataclass(frozen=True, slots=True)
class ResponseFieldAdded:
    """The success responses of ``operation_ids`` (schemas ``schemas``) gained ``field``; older ones lose it.

    ``within`` says where the objects sit in the answer: ``""`` for the answer itself, ``"name[]"`` for every
    item of its top-level list ``name``.
    """

    operation_ids: tuple[str, ...]
    schemas: tuple[str, ...]
    field: str
    within: str = ""


@dataclass(frozen=True, slots=True)
class QueryParameterAdded:
    """``operation_id`` declares the query parameter ``name`` from this version on; older requests lose it."""

    operation_id: str
    name: str


@dataclass(frozen=True, slots=True)
class UnknownQueryParametersRefused:
    """From this version on, a query parameter the operation does not declare is a 400 naming it."""


@dataclass(frozen=True, slots=True)
class ResponseFieldRemoved:
    """The success answers of some operations lost ``field`` of ``schema``; older answers get ``value`` in it.

    ``at`` maps each operationId to where the objects sit in its answer: ``""`` for the answer itself,
    ``"name[]"`` for every item of the top-level list ``name``. ``field_schema`` is the field as older files
    declared it (required), for ``downgrade_schemas``.
    """

    at: tuple[tuple[str, str], ...]
    schema: str
    field: str
    value: Any
    field_schema: dict[str, Any]

    @property
    def operation_ids(self) -> tuple[str, ...]:
        return tuple(operation_id for operation_id, _ in self.at)


@dataclass(frozen=True, slots=True)
class ResponsesDocumented:
    """``statuses`` are documented on every operation from this version on (the behaviour is every version's)."""

    statuses: tuple[str, ...]


Change = (
    OperationAdded
    | RequestFieldAdded
    | ResponseFieldAdded
    | ResponseFieldRemoved
    | ResponsesDocumented
    | QueryParameterAdded
    | UnknownQueryParametersRefused
)


@dataclass(frozen=True, slots=True)
class VersionChange:
    version: str
    description: str
    changes: tuple[Change, ...]


VERSION_CHANGES: Final = (
    VersionChange(
        "2026-11-01",
        "Triggerer orchestration: jobs, claims, workloads, events, failures, cleanup.",
        (
            OperationAdded("registerJob"),
            OperationAdded("heartbeatJob"),
            OperationAdded("completeJob"),
            OperationAdded("loadTriggers"),
            OperationAdded("getTriggerWorkloads"),
            OperationAdded("submitTriggerEvent"),
            OperationAdded("submitTriggerFailure"),
            OperationAdded("cleanupTriggers"),
        ),
    ),
    VersionChange(
        "2026-12-01",
        "Typed events, bulk events, heartbeat deadlines, asset watchers, trigger logs.",
        (
            RequestFieldAdded("submitTriggerEvent", "TriggerEventBody", "event_type", default="resume"),
            RequestFieldAdded("submitTriggerEvent", "TriggerEventBody", "xcoms"),
            ResponseFieldAdded(("registerJob", "heartbeatJob"), ("JobRegistration", "Heartbeat"), "heartbeat_deadline"),
            OperationAdded("submitTriggerEvents"),
            OperationAdded("shipTriggerLogs"),
            OperationAdded("getTaskInstanceLogs"),
            OperationAdded("listAssetWatchers"),
            OperationAdded("createAssetWatcher"),
            OperationAdded("deleteAssetWatcher"),
            OperationAdded("listAssetEvents"),
        ),
    ),
    VersionChange(
        "2026-12-15",
        "Secrets are write-only (no password in admin answers); URL, header-size and JSON-depth limits documented.",
        (
            ResponseFieldRemoved(
                (("putConnection", ""), ("listConnections", "connections[]")),
                "ConnectionInfo",
                "password",
                value=None,
                field_schema={"type": ["string", "null"]},
            ),
            ResponsesDocumented(("414", "431")),
        ),
    ),
    VersionChange(
        "2027-01-01",
        "Unknown query parameters refused; trigger, job and log filters and fields for operators (tocsin triggers "
        "list, jobs list, logs --follow); the watch feed of task-instance changes.",
        (
            UnknownQueryParametersRefused(),
            OperationAdded("watchTaskInstanceChanges"),
            QueryParameterAdded("listTriggers", "state"),
            QueryParameterAdded("listTriggers", "job_id"),
            QueryParameterAdded("listTriggers", "classpath"),
            ResponseFieldAdded(("listTriggers",), ("Trigger",), "state", within="triggers[]"),
            ResponseFieldAdded(("listTriggers",), ("Trigger",), "age_s", within="triggers[]"),
            ResponseFieldAdded(("listTriggers",), ("Trigger",), "last_error", within="triggers[]"),
            QueryParameterAdded("listJobs", "state"),
            QueryParameterAdded("listJobs", "alive"),
            ResponseFieldAdded(("listJobs",), ("Job",), "heartbeat_age_s", within="jobs[]"),
            QueryParameterAdded("getTaskInstanceLogs", "after"),
            ResponseFieldAdded(("getTaskInstanceLogs",), ("StoredTriggerLogLine",), "id", within="lines[]"),
        ),
    ),
)


def _since() -> dict[str, str]:
    return {
        change.operation_id: entry.version
        for entry in VERSION_CHANGES
        for change in entry.changes
        if isinstance(change, OperationAdded)
    }


OPERATION_SINCE: Final = _since()
"""operationId → the version it appeared in (operations absent here exist in every version)."""

STRICT_QUERY_SINCE: Final = min(
    (
        entry.version
        for entry in VERSION_CHANGES
        if any(isinstance(c, UnknownQueryParametersRefused) for c in entry.changes)
    ),
    default=None,
)
"""The first version that refuses unknown query parameters (older ones ignore them)."""


def _newer_than(version: str) -> list[Change]:
    """The changes an older ``version`` must be shielded from, newest version first (undone in that order)."""
    return [change for entry in reversed(VERSION_CHANGES) if entry.version > version for change in entry.changes]


def downgrade_schemas(schemas: dict[str, Any], version: str) -> dict[str, Any]:
    """Component schemas of the latest spec as ``version`` had them (a new dict; the input is not changed)."""
    result = {name: dict(schema) for name, schema in schemas.items()}
    for change in _newer_than(version):
        if isinstance(change, RequestFieldAdded):
            names: tuple[str, ...] = (change.schema,)
        elif isinstance(change, ResponseFieldAdded):
            names = change.schemas
        elif isinstance(change, ResponseFieldRemoved):
            schema = result[change.schema]
            schema["properties"] = {**schema["properties"], change.field: dict(change.field_schema)}
            schema["required"] = [*schema.get("required", []), change.field]
            continue
        else:
            continue
        for name in names:
            schema = result[name]
            schema["properties"] = {k: v for k, v in schema["properties"].items() if k != change.field}
            if "required" in schema:
                schema["required"] = [r for r in schema["required"] if r != change.field]
    return result


def downgrade_spec(document: dict[str, Any], version: str) -> dict[str, Any]:
    """The latest spec as ``version`` had it, as far as the declared changes say (schemas and documented
    responses; a new dict). The contract tests compare the result with the frozen file of ``version``."""
    result = {**document, "components": {**document["components"]}}
    result["components"]["schemas"] = downgrade_schemas(document["components"]["schemas"], version)
    hidden = {s for c in _newer_than(version) if isinstance(c, ResponsesDocumented) for s in c.statuses}
    added = {(c.operation_id, c.name) for c in _newer_than(version) if isinstance(c, QueryParameterAdded)}

    def older(op: dict[str, Any]) -> dict[str, Any]:
        responses = {k: v for k, v in op["responses"].items() if k not in hidden}
        parameters = [
            p
            for p in op.get("parameters", [])
            if not (p.get("in") == "query" and (op.get("operationId"), p.get("name")) in added)
        ]
        return {**op, "responses": responses, **({"parameters": parameters} if "parameters" in op else {})}

    result["paths"] = {
        path: {method: older(op) if isinstance(op, dict) and "responses" in op else op for method, op in item.items()}
        for path, item in document["paths"].items()
    }
    return result


# -- resolving the version -------------------------------------------------------------------------------------


class UnsupportedVersionError(InvalidError):
    """Unsupported API version."""

    def __init__(self, requested: str) -> None:
        super().__init__(
            f"API version {requested!r} is not supported; send one of {', '.join(VERSIONS)} "
            f"in the {VERSION_HEADER} header, or leave it out for the latest",
            field=VERSION_HEADER,
        )
        self.supported_versions = VERSIONS


def requested_version(scope: Scope) -> str | None:
    """The raw header value, or None when the request has no version header."""
    for name, value in scope["headers"]:
        if name == _HEADER_KEY:
            return value.decode("latin-1")
    return None


def resolve_version(raw: str | None) -> str:
    """Missing means the latest; anything else must be a supported version (an empty value is not)."""
    if raw is None:
        return LATEST
    if raw not in _SUPPORTED:
        raise UnsupportedVersionError(raw)
    return raw


def _extensions(scope: Scope) -> dict[str, Any]:
    """The scope as a plain dict: the ASGI scope may carry keys of ours beside the standard ones."""
    return cast("dict[str, Any]", scope)


def api_version(scope: Scope) -> str:
    """The version resolved for this request by the middleware."""
    return str(_extensions(scope).get(_SCOPE_KEY, LATEST))


# -- applying the changes --------------------------------------------------------------------------------------


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _upgrade_request(body: bytes, changes: list[RequestFieldAdded], version: str) -> bytes:
    check_json_body(body)  # before the decoder: it recurses, and this runs before the body guard middleware
    try:
        document = _TOP_LEVEL.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return body  # not a JSON object: the handler's own validation names the problem
    for change in changes:
        if change.field in document:
            msg = f"Object contains unknown field `{change.field}` (it was added after API version {version})"
            raise BodyMismatchError(msg, key=change.field, message=msg)
        if change.default is not msgspec.UNSET:
            document[change.field] = msgspec.Raw(_ENCODER.encode(change.default))
    return _ENCODER.encode(document)


def _downgrade_response(body: bytes, fields: list[tuple[str, str]], restored: list[tuple[str, str, Any]]) -> bytes:
    """``body`` without each (where, field) of ``fields`` and with each (where, field, value) of ``restored`` put
    back; ``where`` is ``""`` for the answer itself or ``"name[]"`` for every item of its top-level list ``name``."""
    try:
        document = _TOP_LEVEL.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return body
    for where, field in fields:
        if not where:
            document.pop(field, None)
        elif where.endswith("[]") and where[:-2] in document:
            items = _ITEMS.decode(document[where[:-2]])
            for item in items:
                item.pop(field, None)
            document[where[:-2]] = msgspec.Raw(_ENCODER.encode(items))
    for where, field, value in restored:
        raw = msgspec.Raw(_ENCODER.encode(value))
        if not where:
            document[field] = raw
        elif where.endswith("[]") and where[:-2] in document:
            items = _ITEMS.decode(document[where[:-2]])
            document[where[:-2]] = msgspec.Raw(_ENCODER.encode([{**item, field: raw} for item in items]))
    return _ENCODER.encode(document)


class ApiVersionMiddleware(ASGIMiddleware):
    """Resolves the version and serves older versions through the declared changes."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        version = resolve_version(requested_version(scope))
        _extensions(scope)[_SCOPE_KEY] = version
        operation_id = getattr(scope["route_handler"], "operation_id", None)
        if STRICT_QUERY_SINCE is not None and version >= STRICT_QUERY_SINCE and isinstance(operation_id, str):
            declared = declared_query_parameters(version).get(operation_id)
            if declared is not None:  # an operation of the contract (not /openapi.json or /docs)
                refuse_unknown_query(scope["query_string"], declared)
        if version == LATEST:
            await next_app(scope, receive, send)
            return
        since = OPERATION_SINCE.get(operation_id) if isinstance(operation_id, str) else None
        if since is not None and version < since:
            msg = f"{_extensions(scope)['method']} {scope['path']} does not exist in API version {version} (added in {since})"
            raise NotFoundException(msg)
        older = _newer_than(version)
        requests = [c for c in older if isinstance(c, RequestFieldAdded) and c.operation_id == operation_id]
        hidden = {c.name for c in older if isinstance(c, QueryParameterAdded) and c.operation_id == operation_id}
        if hidden:
            scope["query_string"] = without_query_parameters(scope["query_string"], hidden)
        removed = [
            (c.within, c.field) for c in older if isinstance(c, ResponseFieldAdded) and operation_id in c.operation_ids
        ]
        restored = [
            (where, c.field, c.value)
            for c in older
            if isinstance(c, ResponseFieldRemoved)
            for op, where in c.at
            if op == operation_id
        ]
        if requests:
            body = _upgrade_request(await _read_body(receive), requests, version)
            delivered = False

            async def upgraded_receive() -> Any:
                nonlocal delivered
                if delivered:
                    return await receive()
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}

            receive = upgraded_receive
        if removed or restored:
            send = _downgrading_send(send, removed, restored)
        await next_app(scope, receive, send)


def _downgrading_send(send: Send, fields: list[tuple[str, str]], restored: list[tuple[str, str, Any]]) -> Send:
    """Buffer a 2xx JSON answer, drop ``fields`` from it (and restore ``restored``), fix its length; pass
    anything else through."""
    start: dict[str, Any] = {}
    parts: list[bytes] = []

    async def downgrading(message: Message) -> None:
        if message["type"] == "http.response.start":
            if 200 <= message["status"] < 300:
                start.update(message)
                return
            await send(message)
            return
        if message["type"] != "http.response.body" or not start:
            await send(message)
            return
        parts.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = _downgrade_response(b"".join(parts), fields, restored)
        headers = [(k, v) for k, v in start.get("headers", ()) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send(cast("Message", {**start, "headers": headers}))
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return downgrading


async def echo_version(message: Message, scope: Scope) -> None:
    """``before_send`` hook: every response names the version that served it, router 404s and 405s too."""
    if message["type"] != "http.response.start":
        return
    version: str | None = _extensions(scope).get(_SCOPE_KEY)
    if version is None:
        raw = requested_version(scope)
        version = LATEST if raw is None else raw if raw in _SUPPORTED else None
    if version is not None:
        message["headers"] = [*message.get("headers", ()), (_HEADER_KEY, version.encode())]
