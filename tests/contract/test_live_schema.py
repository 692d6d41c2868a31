"""Layer (a) of the contract gate: the live schema against the hand-written spec, for every version."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from litestar import get
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute
from tocsin_server.app import ROUTERS, create_app
from tocsin_server.config import Settings
from tocsin_server.web.spec import load_spec
from tocsin_server.web.versioning import LATEST, OPERATION_SINCE, VERSIONS, downgrade_spec

from tests.contract.allowlist import ALLOWED_DRIFT
from tests.contract.schema_diff import compare, operations_of


def _report(findings: list[Any]) -> str:
    return "live schema drifted from the spec:\n" + "\n".join(str(f) for f in findings)


def test__latest_spec__has_zero_drift(live_schema: dict[str, Any]) -> None:
    findings = compare(load_spec(LATEST), live_schema, ALLOWED_DRIFT)
    assert not findings, _report(findings)


def test__allowlist_entries_are_all_still_needed(live_schema: dict[str, Any]) -> None:
    """An entry Litestar no longer needs must go, or it would hide real drift later."""
    for pattern in ALLOWED_DRIFT:
        others = {p: r for p, r in ALLOWED_DRIFT.items() if p != pattern}
        assert compare(load_spec(LATEST), live_schema, others), f"allow-list entry {pattern!r} matches nothing"


def _published_handlers() -> list[HTTPRouteHandler]:
    """The handlers of the operations the app publishes, from each module's router."""
    return [
        handler
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, HTTPRoute)
        for handler in route.route_handlers
        if handler.resolve_include_in_schema()  # inherited from its router, as the app resolves it
    ]


def _operations_in(version: str) -> set[str]:
    """The operations served in ``version``: every published one, less those VERSION_CHANGES added later."""
    operations = set()
    for handler in _published_handlers():
        since = OPERATION_SINCE.get(str(handler.operation_id))
        if since is not None and since > version:
            continue
        for path in handler.paths:
            for method in handler.http_methods:
                operations.add(f"{method} {path}")
    return {op.replace(":str}", "}").replace(":int}", "}").replace(":uuid}", "}") for op in operations}


@pytest.mark.parametrize("version", VERSIONS)
def test__each_version_file__has_exactly_the_operations_served_in_it(version: str) -> None:
    assert operations_of(load_spec(version)) == _operations_in(version)


def _without_501(document: dict[str, Any]) -> dict[str, Any]:
    """2026-11-01 was released while its triggerer operations still answered 501 (not implemented yet); they are
    implemented now, so that documented 501 is the one difference an older file may show."""
    document = copy.deepcopy(document)
    for item in document["paths"].values():
        for operation in item.values():
            operation.get("responses", {}).pop("501", None)
    return document


@pytest.mark.parametrize("version", VERSIONS[:-1])
def test__older_version_operations__match_the_latest_definitions_after_the_declared_changes(version: str) -> None:
    """An operation an older file shares with the latest must equal the latest one once the declared changes
    of versioning.VERSION_CHANGES are undone (handlers serve the latest; the middleware serves the rest)."""
    older = _without_501(load_spec(version))
    latest = downgrade_spec(copy.deepcopy(load_spec(LATEST)), version)
    latest["paths"] = {
        path: {m: op for m, op in item.items() if m in older.get("paths", {}).get(path, {})}
        for path, item in latest["paths"].items()
        if path in older["paths"]
    }
    _without_undocumented_503(older, latest)
    _without_undocumented_500(older, latest)
    _without_rules_older_files_state_in_prose(older, latest)
    assert not compare(older, latest, {}), _report(compare(older, latest, {}))


def _without_undocumented_503(older: dict[str, Any], latest: dict[str, Any]) -> None:
    """2026-12-15 documents the 503 (database unavailable) that the server answers in every version; the older
    files were released without it, so on an operation an older file documents no 503 the latest's is dropped."""
    for path, item in latest["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "503" not in older["paths"][path][method].get("responses", {}):
                operation.get("responses", {}).pop("503", None)


def _without_undocumented_500(older: dict[str, Any], latest: dict[str, Any]) -> None:
    """2027-01-01 documents the 500 (an unexpected error, problem+json) that any operation of any version can
    answer; the older files were released without it, so where an older file documents no 500 it is dropped."""
    for path, item in latest["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "500" not in older["paths"][path][method].get("responses", {}):
                operation.get("responses", {}).pop("500", None)


def _without_rules_older_files_state_in_prose(older: dict[str, Any], latest: dict[str, Any]) -> None:
    """2027-01-01 states in the schema (``if``/``then``) rules the server enforced in every version and the older
    files state in prose (TriggerEventBody: a resume event has no xcoms); where an older schema has none, the
    latest's is dropped."""
    older_schemas = older.get("components", {}).get("schemas", {})
    for name, schema in latest["components"]["schemas"].items():
        if name in older_schemas and "if" not in older_schemas[name]:
            for key in ("if", "then", "else"):
                schema.pop(key, None)


def test__every_operation_added_in_version_changes_is_served() -> None:
    """VERSION_CHANGES is the one declaration of when an operation appeared: a name there that no handler
    carries (a typo, a renamed operation) would leave the real operation served in every version."""
    served = {handler.operation_id for handler in _published_handlers()}
    assert set(OPERATION_SINCE) - served == set()


def test__handlers_carry_no_version_of_their_own() -> None:
    """The version lives in VERSION_CHANGES only; a ``since`` on a handler would be a second, unread copy."""
    assert [h.operation_id for h in _published_handlers() if "since" in h.opt] == []


# --- the gate cannot silently pass: injected drift is caught ------------------------------------------------


def test__drift__extra_response_field_is_detected(live_schema: dict[str, Any]) -> None:
    spec = copy.deepcopy(load_spec(LATEST))
    spec["components"]["schemas"]["Variable"]["properties"]["created_at"] = {"type": "string"}
    findings = compare(spec, live_schema, ALLOWED_DRIFT)
    assert any("/properties/created_at" in f.where for f in findings)


def test__drift__changed_status_code_is_detected(live_schema: dict[str, Any]) -> None:
    spec = copy.deepcopy(load_spec(LATEST))
    operation = spec["paths"]["/execution/variables/{key}"]["put"]
    operation["responses"]["201"] = operation["responses"].pop("200")
    findings = compare(spec, live_schema, ALLOWED_DRIFT)
    assert {f.where for f in findings} >= {
        "/PUT /execution/variables/{key}/responses/200",
        "/PUT /execution/variables/{key}/responses/201",
    }


def test__drift__a_changed_rule_across_fields_is_detected(live_schema: dict[str, Any]) -> None:
    spec = copy.deepcopy(load_spec(LATEST))
    rule = spec["components"]["schemas"]["TriggerEventBody"]
    rule["if"]["properties"]["event_type"]["const"] = "task_success"
    rule["else"]["properties"]["xcoms"]["propertyNames"] = {"type": "string", "maxLength": 10}
    wheres = {f.where for f in compare(spec, live_schema, ALLOWED_DRIFT)}
    body = "/POST /execution/triggers/{trigger_id}/event/requestBody/content/application/json"
    assert {f"{body}/if/properties/event_type/enum[0]", f"{body}/else/properties/xcoms/propertyNames/pattern"} <= wheres


def test__drift__missing_operation_is_detected(live_schema: dict[str, Any]) -> None:
    live = copy.deepcopy(live_schema)
    del live["paths"]["/execution/variables/{key}"]["delete"]
    findings = compare(load_spec(LATEST), live, ALLOWED_DRIFT)
    assert [f.where for f in findings] == ["/DELETE /execution/variables/{key}"]


def test__drift__changed_constraint_and_required_are_detected(live_schema: dict[str, Any]) -> None:
    spec = copy.deepcopy(load_spec(LATEST))
    spec["components"]["schemas"]["VariableBody"]["properties"]["value"]["maxLength"] = 10
    spec["components"]["schemas"]["VariableBody"]["required"] = ["value", "description"]
    wheres = {f.where for f in compare(spec, live_schema, ALLOWED_DRIFT)}
    assert "/PUT /execution/variables/{key}/requestBody/content/application/json/properties/value/maxLength" in wheres
    assert "/PUT /execution/variables/{key}/requestBody/content/application/json/required[1]" in wheres or any(
        "required" in w for w in wheres
    )


def test__drift__an_extra_route_in_the_app_is_detected() -> None:
    @get("/execution/surprise", operation_id="surprise")
    async def surprise() -> None:
        return None

    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:", jwt_secret="x" * 40), live_schema=True)
    app.register(surprise)
    findings = compare(load_spec(LATEST), app.openapi_schema.to_schema(), ALLOWED_DRIFT)
    assert [f.where for f in findings] == ["/GET /execution/surprise"]
