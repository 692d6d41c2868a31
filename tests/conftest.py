"""Fixtures shared by every test: databases on SQLite and PostgreSQL, the app, a spec-validating client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from tocsin_server.app import create_app
from tocsin_server.config import Settings
from tocsin_server.web.tokens import TokenAuthority

from harness.databases import empty_database, postgres_database, sqlite_database
from harness.live_server import LiveServer, live_server
from tests.support.spec_validation import ResponseValidator

SECRET = "test-only-secret-" + "s" * 40
BACKENDS = ("sqlite", "postgres")


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database of each backend, kept for the session: every test using it runs on both."""
    if request.param == "postgres":
        with postgres_database() as url:
            yield url
    else:
        with sqlite_database(tmp_path_factory.mktemp("sqlite")) as url:
            yield url


@pytest.fixture
def clean_database(database_url: str) -> str:
    empty_database(database_url)
    return database_url


@pytest.fixture
def settings(clean_database: str) -> Settings:
    return Settings(database_url=clean_database, jwt_secret=SECRET).validate()


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture
def authority() -> TokenAuthority:
    return TokenAuthority(SECRET, issuer="tocsin", audience="tocsin")


@pytest.fixture
def auth(authority: TokenAuthority) -> Callable[..., dict[str, str]]:
    """``auth("admin")`` → headers with a bearer token of those scopes."""

    def headers(*scopes: str, ttl_s: float = 600) -> dict[str, str]:
        return {"Authorization": f"Bearer {authority.issue('test', list(scopes), ttl_s)}"}

    return headers


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient[Litestar]]:
    """A test client whose every response is validated against the spec of the version that served it."""
    with TestClient(app) as test_client:
        validator = ResponseValidator(str(test_client.base_url).rstrip("/"))
        test_client.event_hooks["response"] = [validator]
        yield test_client


@pytest.fixture
def admin(client: TestClient[Litestar], auth: Callable[..., dict[str, str]]) -> TestClient[Litestar]:
    """The spec-validating client carrying an admin + worker token."""
    client.headers.update(auth("admin", "worker"))
    return client


@pytest.fixture(scope="session")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real ``tocsin api-server`` process per backend, on a database of its own.

    Its own database, because the server runs periodic duties (timeouts, reaping, cleanup) in the
    background: on the database the in-process tests use, they would race those tests' assertions.
    """
    log = Path(tmp_path_factory.mktemp("server")) / "server.log"
    with ExitStack() as stack:
        if database_url.startswith("postgresql"):
            url = stack.enter_context(postgres_database())
        else:
            url = stack.enter_context(sqlite_database(tmp_path_factory.mktemp("server-sqlite")))
        yield stack.enter_context(live_server(url, SECRET, log))


@pytest.fixture
def live(server: LiveServer) -> LiveServer:
    """The live server with an empty database."""
    empty_database(server.env["TOCSIN_DATABASE_URL"])
    return server
