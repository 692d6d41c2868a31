"""The bearer middleware's access rules: a route declares who may call it in its ``opt``; one that declares
nothing admits no token at all (fail closed), whatever its scopes."""

from __future__ import annotations

from litestar import Litestar, get
from litestar.testing import TestClient
from tocsin_server.web.auth import JOB_ACCESS, BearerAuthMiddleware, access
from tocsin_server.web.problems import EXCEPTION_HANDLERS
from tocsin_server.web.tokens import TokenAuthority

SECRET = "s" * 40


@get("/declared", opt=access("worker", task_instance=True), sync_to_thread=False)
def declared() -> str:
    return "ok"


@get("/job-only", opt=JOB_ACCESS, sync_to_thread=False)
def job_only() -> str:
    return "ok"


@get("/undeclared", sync_to_thread=False)
def undeclared() -> str:
    return "ok"


def _client(authority: TokenAuthority) -> TestClient[Litestar]:
    app = Litestar(
        [declared, job_only, undeclared],
        middleware=[BearerAuthMiddleware(authority)],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    return TestClient(app)


def test_each_rule_admits_exactly_the_kinds_it_names() -> None:
    authority = TokenAuthority(SECRET, issuer="tocsin", audience="tocsin")
    worker = {"Authorization": f"Bearer {authority.issue('t', ['worker'], 600)}"}
    admin = {"Authorization": f"Bearer {authority.issue('t', ['admin'], 600)}"}
    task = {"Authorization": f"Bearer {authority.issue('t', ['ti:00000000-0000-0000-0000-000000000007'], 600)}"}
    job = {"Authorization": f"Bearer {authority.issue('t', ['job:5'], 600)}"}
    with _client(authority) as client:
        assert client.get("/declared", headers=worker).status_code == 200
        assert client.get("/declared", headers=task).status_code == 200
        refused = client.get("/declared", headers=admin)
        assert refused.status_code == 403
        assert refused.json()["detail"] == "this operation needs a token with scope 'worker' or a task-instance token"
        assert client.get("/job-only", headers=job).status_code == 200
        no_job = client.get("/job-only", headers=admin)
        assert no_job.status_code == 403
        assert "job-scoped token" in no_job.json()["detail"]
        assert client.get("/declared").status_code == 401  # no token: authentication comes first


def test_a_route_without_a_rule_admits_no_token() -> None:
    authority = TokenAuthority(SECRET, issuer="tocsin", audience="tocsin")
    with _client(authority) as client:
        for scopes in (["admin"], ["worker"], ["triggerer"], ["job:1"]):
            headers = {"Authorization": f"Bearer {authority.issue('t', scopes, 600)}"}
            answer = client.get("/undeclared", headers=headers)
            assert answer.status_code == 403, scopes
            assert "declares no access rule" in answer.json()["detail"]
