"""An HTTP proxy that records each request's bearer token and each answer's status and refreshed token: what a
triggerer holds, seen from outside it. Its target can change while it runs (a rolling restart of the server)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

import httpx
import jwt

from harness.live_server import LiveServer

_HOP_BY_HOP: Final = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host", "date", "server"}
)


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    token: str | None
    status: int
    refreshed: str | None

    @property
    def scope(self) -> str:
        """The scope claim of the request's token (read without checking it: the server did that)."""
        if self.token is None:
            return ""
        return str(jwt.decode(self.token, options={"verify_signature": False}).get("scope", ""))

    @property
    def kid(self) -> str | None:
        return kid_of(self.token) if self.token else None


def kid_of(token: str) -> str | None:
    kid = jwt.get_unverified_header(token).get("kid")
    return None if kid is None else str(kid)


class RecordingProxy:
    def __init__(self) -> None:
        self.target = ""
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._upstream = httpx.Client(timeout=30.0)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def send_to(self, server: LiveServer) -> None:
        self.target = server.url

    def seen(self) -> list[Exchange]:
        with self._lock:
            return list(self.exchanges)

    def record(self, exchange: Exchange) -> None:
        with self._lock:
            self.exchanges.append(exchange)

    def forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> httpx.Response:
        return self._upstream.request(method, self.target + path, headers=headers, content=body)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._upstream.close()


def _handler(proxy: RecordingProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: Any) -> None:
            pass

        def forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = [(k, v) for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP]
            try:
                response = proxy.forward(self.command, self.path, headers, body)
            except (httpx.TransportError, RuntimeError) as exc:  # a 502 (recorded): the request found no server
                response = httpx.Response(502, text=f"the proxy's target {proxy.target}: {exc}")
            authorization = self.headers.get("Authorization", "")
            token = authorization.removeprefix("Bearer ") if authorization.startswith("Bearer ") else None
            refreshed = response.headers.get("Refreshed-API-Token")
            proxy.record(Exchange(self.command, self.path, token, response.status_code, refreshed))
            self.send_response_only(response.status_code)
            for name, value in response.headers.multi_items():
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.content)))
            self.end_headers()
            self.wfile.write(response.content)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = forward  # noqa: N815 - http.server's names

    return Handler
