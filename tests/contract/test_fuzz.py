"""Layer (b) of the contract gate: schemathesis fuzzes a real server against every version file.

The version header is pinned per file (it selects a contract rather than being an input), so it is
stripped from the documents and set on every call. Bounded: a few dozen examples per operation.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from tocsin_server.config import Settings
from tocsin_server.web.http_limits import MAX_URL_BYTES
from tocsin_server.web.spec import load_spec
from tocsin_server.web.tokens import TokenAuthority
from tocsin_server.web.versioning import VERSIONS

from harness.databases import empty_database
from harness.live_server import LiveServer
from tests.conftest import SECRET

MAX_EXAMPLES = 25


def _without_version_header(version: str) -> dict[str, Any]:
    document = copy.deepcopy(load_spec(version))
    for item in document["paths"].values():
        for operation in item.values():
            operation["parameters"] = [
                p for p in operation.get("parameters", []) if p.get("$ref") != "#/components/parameters/ApiVersion"
            ]
    del document["components"]["parameters"]["ApiVersion"]
    return document


def _token() -> str:
    return TokenAuthority(SECRET, issuer="tocsin", audience="tocsin").issue(
        "fuzz", ["admin", "worker", "triggerer"], 3600
    )


SCHEMAS = {version: schemathesis.openapi.from_dict(_without_version_header(version)) for version in VERSIONS}


@schemathesis.auth()
class _Bearer:
    """An admin + worker + triggerer token; registered as auth so the fuzzer also tries without it."""

    def get(self, case: schemathesis.Case, context: object) -> str:
        return _token()

    def set(self, case: schemathesis.Case, data: str, context: object) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


LONG_POLL_S = 0.1
"""The most a fuzzed long poll (``watchTaskInstanceChanges``'s ``wait``) may wait: no one commits the change it
waits for, so each would take its whole wait (up to 30 s). Its waking is tested in test_watch_feed.py."""


def _bound_long_poll(case: schemathesis.Case) -> None:
    wait = (case.query or {}).get("wait")
    if isinstance(wait, int | float) and not isinstance(wait, bool) and wait > LONG_POLL_S:
        case.query = {**(case.query or {}), "wait": LONG_POLL_S}


def _fuzz(case: schemathesis.Case, server: LiveServer, version: str) -> None:
    case.headers = {**(case.headers or {}), "Tocsin-API-Version": version}
    _bound_long_poll(case)
    # A session of our own, closed at once: without one schemathesis makes one per call and leaves its socket to
    # the garbage collector, whose ResourceWarning then fails whichever later test it lands in.
    with requests.Session() as session:
        response = case.call(base_url=server.url, session=session)
    _validate(case, response)


def _validate(case: schemathesis.Case, response: Any) -> None:
    if response.status_code == 414:
        # The documented URL limit (every version; files before 2026-12-15 do not list it yet). Schemathesis
        # counts any refusal of a schema-valid request as a failure, but the schema cannot say how long a URL
        # its generated values make.
        assert len(response.request.url or "") > MAX_URL_BYTES
        assert response.headers["content-type"] == ["application/problem+json"]
        return
    if response.status_code == 413:
        # An over-size body is refused before validation, rightly; schemathesis does not count 413 as a rejection.
        assert len(response.request.body or b"") > Settings().max_body_bytes
        assert response.headers["content-type"] == ["application/problem+json"]
        return
    case.validate_response(response)


# Older versions differ from the latest only in the versioning layer (declared request upgrades and response
# downgrades), which no database touches; the handlers and their SQL are the latest version's, fuzzed on both.
ONE_BACKEND = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
_SETTINGS = settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


def _fuzz_test(version: str) -> Any:
    """One fuzz test for ``version``'s file; the latest on both backends, the older ones on SQLite."""

    @pytest.mark.slow
    @SCHEMAS[version].parametrize()
    @_SETTINGS
    def test(case: schemathesis.Case, live: LiveServer) -> None:
        _fuzz(case, live, version)

    return test if version == VERSIONS[-1] else ONE_BACKEND(test)


# One test per served version, named after it (test__fuzz_2026_12_15, ...): a new version is fuzzed without an
# edit here, and a test id still says which file failed.
for _version in VERSIONS:
    globals()[f"test__fuzz_{_version.replace('-', '_')}"] = _fuzz_test(_version)


# --- stateful: the spec's links (registerJob → loadTriggers → getTriggerWorkloads → submitTriggerEvent, createDagRun
# → createTaskInstance → ...) chain calls, each fed from an earlier answer. Bounded: a few short scenarios.

STATEFUL = settings(
    max_examples=25, stateful_step_count=10, deadline=None, suppress_health_check=list(HealthCheck), database=None
)


def _job_scoped(case: schemathesis.Case) -> bool:
    """Whether the operation's declared security admits the job token only (the spec says which)."""
    return case.operation.definition.raw.get("security") == [{"bearer": ["job"]}]


@pytest.mark.slow
@ONE_BACKEND
def test__stateful_fuzz_latest_follows_the_links(live: LiveServer) -> None:
    class Workflow(SCHEMAS[VERSIONS[-1]].as_state_machine()):  # type: ignore[misc]
        """Job-scoped operations get the job token the scenario's last registerJob returned, so the orchestration
        flow runs as a triggerer's would rather than stopping at 403."""

        def setup(self) -> None:
            # Each scenario from an empty database: which links a scenario can follow depends on what earlier
            # answers created, and Hypothesis replays a scenario expecting the same answers.
            empty_database(live.env["TOCSIN_DATABASE_URL"])
            self.session = requests.Session()
            self.job_token: str | None = None

        def teardown(self) -> None:
            self.session.close()

        def before_call(self, case: schemathesis.Case) -> None:
            case.headers = {**(case.headers or {}), "Tocsin-API-Version": VERSIONS[-1]}
            _bound_long_poll(case)
            if self.job_token is not None and _job_scoped(case) and "Authorization" in case.headers:
                case.headers["Authorization"] = f"Bearer {self.job_token}"

        def after_call(self, response: Any, case: schemathesis.Case) -> None:
            if case.operation.definition.raw.get("operationId") == "registerJob" and response.status_code == 201:
                self.job_token = response.json()["token"]

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": live.url, "session": self.session}

        def validate_response(self, response: Any, case: schemathesis.Case, **kwargs: Any) -> None:
            _validate(case, response)

    Workflow.run(settings=STATEFUL)
