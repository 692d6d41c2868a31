"""The documented URL and header limits of a real ``tocsin api-server``: 414 and 431 as problem+json, never the
HTTP server's plain-text 400 (issue 7, C19). Raw sockets, so that nothing between the test and the server
(an HTTP client's own limits) changes what is sent."""

from __future__ import annotations

import contextlib
import json
import socket
from urllib.parse import urlsplit

import httpx
import pytest
from tocsin_server.web.http_limits import MAX_HEADER_BYTES, MAX_URL_BYTES
from tocsin_server.web.json_limits import MAX_JSON_DEPTH
from tocsin_server.web.tokens import TokenAuthority

from harness.live_server import LiveServer
from tests.conftest import SECRET


def _token() -> str:
    return TokenAuthority(SECRET, issuer="tocsin", audience="tocsin").issue("limits", ["admin", "worker"], 600)


def _exchange(server: LiveServer, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the whole answer (the server closes after a refusal or with Connection: close)."""
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname or "127.0.0.1", address.port or 80), timeout=15) as sock:
        # The server may refuse before all of a huge request is sent (it drops the rest); its answer is queued.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, body


def _get(target: str, extra_headers: str = "") -> bytes:
    return (
        f"GET {target} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {_token()}\r\n{extra_headers}"
        "Connection: close\r\n\r\n"
    ).encode()


def _assert_problem(answer: tuple[int, dict[str, str], bytes], status: int, kind: str) -> None:
    code, headers, body = answer
    assert code == status, body[:300]
    assert headers["content-type"] == "application/problem+json"
    assert int(headers["content-length"]) == len(body)
    problem = json.loads(body)
    assert problem["status"] == status
    assert problem["type"] == f"urn:tocsin:problem:{kind}"
    assert str({414: MAX_URL_BYTES, 431: MAX_HEADER_BYTES}[status]) in problem["detail"]


@pytest.mark.parametrize("size", [MAX_URL_BYTES + 1, 70_000, 1_000_000])
def test__an_over_long_url__is_414_problem(live: LiveServer, size: int) -> None:
    path = "/execution/variables/x?pad="
    _assert_problem(_exchange(live, _get(path + "a" * (size - len(path)))), 414, "uri-too-long")


def test__a_url_at_the_limit__reaches_the_app(live: LiveServer) -> None:
    path = "/api/v1/variables?limit=5&pad="
    # The padding is a parameter listVariables does not declare: 2026-12-15 ignores it (2027-01-01 would refuse
    # it with 400, tests/integration/test_unknown_query.py); the URL limit is every version's.
    older = "Tocsin-API-Version: 2026-12-15\r\n"
    code, headers, _ = _exchange(live, _get(path + "a" * (MAX_URL_BYTES - len(path)), older))
    assert code == 200
    assert headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    "extra",
    [
        "X-Big: " + "a" * (MAX_HEADER_BYTES + 1) + "\r\n",
        "X-Bigger: " + "a" * 200_000 + "\r\n",
        "".join(f"X-Many-{i}: {'v' * 100}\r\n" for i in range(400)),
    ],
    ids=["one-header", "one-huge-header", "many-headers"],
)
def test__over_large_header_fields__are_431_problem(live: LiveServer, extra: str) -> None:
    _assert_problem(_exchange(live, _get("/execution/variables/x", extra)), 431, "request-header-fields-too-large")


def test__a_header_that_never_ends__is_431_before_it_is_buffered_whole(live: LiveServer) -> None:
    """httptools hands over a header only once it ends; the server does not wait (and buffer) that long."""
    unending = b"GET /health HTTP/1.1\r\nHost: test\r\nX-Endless: " + b"a" * 2_000_000
    _assert_problem(_exchange(live, unending), 431, "request-header-fields-too-large")


def test__the_server_keeps_serving_after_refusals(live: LiveServer) -> None:
    for _ in range(3):
        _exchange(live, _get("/health?" + "a" * 100_000))
        _exchange(live, _get("/health", "X-Big: " + "a" * 100_000 + "\r\n"))
    headers = {"Authorization": f"Bearer {_token()}"}
    assert httpx.put(f"{live.url}/execution/variables/k", json={"value": "v"}, headers=headers).status_code == 200
    assert httpx.get(f"{live.url}/execution/variables/k", headers=headers).json()["value"] == "v"


def test__deep_json_and_bad_utf8__are_400_problems_on_the_real_server(live: LiveServer) -> None:
    """The body limits (C16, C17) where the decoder's recursion limit is the real server's, not a test's."""
    headers = {"Authorization": f"Bearer {_token()}", "content-type": "application/json"}
    deep = b'{"value": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    for content, kind in ((deep, "json-too-deep"), (b'{"value": "\xff"}', "invalid-utf-8")):
        response = httpx.put(f"{live.url}/execution/variables/k", content=content, headers=headers)
        assert response.status_code == 400, response.text
        assert response.json()["type"] == f"urn:tocsin:problem:{kind}"
    shallow = b'{"value": ' + b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1) + b"}"
    response = httpx.post(f"{live.url}/execution/xcoms/d/r/t/k", content=shallow, headers=headers)
    assert response.status_code != 400, response.text  # not refused for its depth (404: no such task instance)
    assert httpx.get(f"{live.url}/execution/variables/k", headers=headers).status_code == 404
