"""The standalone's port probe binds the way the server binds, so TIME-WAIT leftovers of a stopped server are free."""

from __future__ import annotations

import socket

from tocsin_server.standalone import port_free


def _time_wait_on_a_closed_listener() -> int:
    """A port whose listener is closed and whose accepted connection the server side closed first (TIME-WAIT)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = int(listener.getsockname()[1])
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the server closes first: its end goes to TIME-WAIT once the client closes too
    client.recv(1)
    client.close()
    listener.close()
    return port


def _binds_without_reuse(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test__a_port_in_time_wait__is_free_for_the_server() -> None:
    port = _time_wait_on_a_closed_listener()
    assert not _binds_without_reuse(port), "the fixture must leave the port in TIME-WAIT"
    assert port_free("127.0.0.1", port)


def test__a_port_with_a_listener__is_in_use() -> None:
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert not port_free("127.0.0.1", int(listener.getsockname()[1]))


def test__a_host_that_does_not_resolve__is_not_free() -> None:
    assert not port_free("no-such-host.invalid", 8080)
