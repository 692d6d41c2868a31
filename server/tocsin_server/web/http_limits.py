"""Documented limits on the request line and header fields, answered with problem+json (414, 431).

The HTTP server reads these before any route exists: uvicorn with httptools refuses a URL over ~64 KiB with a
plain-text 400 (httptools cannot parse it) and takes header fields of any size. ``LimitedHttpToolsProtocol``
is uvicorn's httptools protocol with documented limits below those, counted as the bytes arrive, and a
problem+json answer when one is passed; ``tocsin api-server`` serves with it. The limits hold in every API
version (the version header may not even have arrived), so the answers carry no version header.
"""

from __future__ import annotations

import asyncio
from typing import Final

import msgspec
from tocsin_wire.problems import PROBLEM_MEDIA_TYPE, kind_of_status, problem_type
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from tocsin_server.generated.models import Problem
from tocsin_server.web.draining import drain

MAX_URL_BYTES: Final = 8192
"""The longest request target (path and query) accepted; longer is 414."""
MAX_HEADER_BYTES: Final = 32768
"""The most bytes all header field names and values may take together; more is 431."""
PROTOCOL: Final = "tocsin_server.web.http_limits:LimitedHttpToolsProtocol"
"""What to pass uvicorn as ``http=``."""
_TITLES: Final = {414: "URI Too Long", 431: "Request Header Fields Too Large"}
"""RFC 9110 and RFC 6585 names (Python's ``HTTPStatus`` still says "Request-URI Too Long")."""
_MAX_HEAD_BYTES: Final = MAX_URL_BYTES + 4 * MAX_HEADER_BYTES
"""httptools hands over a header field only once it is complete; a request whose head has not ended after this
many bytes has passed the header limit already (with room for the ": " and CRLF of many tiny fields)."""
_HEADER_DETAIL: Final = (
    f"the request's header fields take more than {MAX_HEADER_BYTES} bytes, the most this server accepts"
)
_LINGER_S: Final = 2.0
"""After a refusal, how long the rest of the request is read and dropped before the connection closes."""


class _LimitPassedError(Exception):
    """Raised from a parser callback; httptools wraps it in ``HttpParserCallbackError``."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing an over-long URL (414) or over-large header fields (431)."""

    _refusal: tuple[int, str] | None = None
    _header_bytes: int = 0
    _head_bytes: int | None = 0
    """Bytes received while the current request's head is incomplete; None once it is complete."""
    _lingering: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None:
            return  # the rest of a refused request: dropped
        super().data_received(data)
        if self._lingering is None and self._head_bytes is not None:
            self._head_bytes += len(data)  # all of it is head: the head has not ended yet
            if self._head_bytes > _MAX_HEAD_BYTES and not self.transport.is_closing():
                self._refusal = (431, _HEADER_DETAIL)
                self.send_400_response(_HEADER_DETAIL)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lingering is not None:
            self._lingering.cancel()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        """The graceful shutdown begins: open watch streams end now rather than hold it up (web/draining.py)."""
        drain()
        super().shutdown()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._refusal = None
        self._header_bytes = 0
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        super().on_headers_complete()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_URL_BYTES:
            self._refuse(414, f"the request URL is longer than {MAX_URL_BYTES} bytes, the most this server accepts")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            self._refuse(431, _HEADER_DETAIL)
        super().on_header(name, value)

    def _refuse(self, status: int, detail: str) -> None:
        self._refusal = (status, detail)
        raise _LimitPassedError

    def send_400_response(self, msg: str) -> None:
        """uvicorn answers every parser error here; a passed limit gets its own problem instead."""
        if self._refusal is None:
            super().send_400_response(msg)
            return
        status, detail = self._refusal
        phrase = _TITLES[status]
        body = msgspec.json.encode(
            Problem(type=problem_type(kind_of_status(status)), title=phrase, status=status, detail=detail)
        )
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.extend(
            [
                b"content-type: " + PROBLEM_MEDIA_TYPE.encode("ascii") + b"\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(head))
        # Closing at once, with the client still sending the rest of its request, would make the kernel answer
        # with a reset that can destroy the answer before the client reads it. Half-close instead (the client
        # sees the end of the answer), drop what still arrives, and close a little later (a lingering close).
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._lingering = asyncio.get_running_loop().call_later(_LINGER_S, self.transport.close)
