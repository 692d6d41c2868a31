"""``tocsin standalone``: the API server and one triggerer as two child processes, supervised and stopped in order.

However it is stopped — one or two Ctrl-C, SIGTERM, SIGHUP (the terminal closing) — it stops the triggerer first
(which delivers what it holds and completes its job while the API server still answers), then the API server, and
only then exits: no child is ever left behind. The children run in sessions of their own so that a Ctrl-C reaches
this process alone, and they are told by the kernel to stop should this process die without cleaning up (SIGKILL).
A triggerer that exits while the server runs is started again, with a growing pause; the API server exiting ends
the standalone.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
TRIGGERER_GRACE_S = 45.0
"""How long the triggerer may take to deliver and complete its job after the first stop signal."""
SERVER_GRACE_S = 20.0
RESTART_PAUSE_MAX_S = 30.0
STABLE_AFTER_S = 60.0
"""A triggerer that ran this long before exiting is restarted at once again (its pause is reset)."""
_PR_SET_PDEATHSIG = 1


def port_free(host: str, port: int) -> bool:
    """Whether the API server could bind ``host:port``: probed the way it binds (``SO_REUSEADDR``, as uvicorn does), so
    the connections of a server that just stopped, sitting in TIME-WAIT, do not count as the port being in use."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return False
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError:
            return False
    return True


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends it SIGTERM if the standalone dies without stopping it."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def show(text: str) -> None:
    """The banner on stdout; a closed terminal must not stop the standalone."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError:
        pass


def say(text: str) -> None:
    """One line on stderr; a closed terminal (EIO after SIGHUP) must not stop the shutdown."""
    try:
        sys.stderr.write(f"tocsin standalone: {text}\n")
        sys.stderr.flush()
    except OSError:
        pass


@dataclass
class StopRequest:
    """Counts the stop signals received; the signal handler only records, the supervisor loop acts."""

    count: int = 0
    names: list[str] = field(default_factory=list)

    def note(self, signum: int, _: FrameType | None) -> None:
        self.count += 1
        self.names.append(signal.Signals(signum).name)

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self.note)


@dataclass
class Child:
    """One supervised child process, started again on demand."""

    name: str
    argv: list[str]
    env: Callable[[], Mapping[str, str]]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            self.argv,
            env=dict(self.env()),
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - the standalone starts no threads
        )
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int:
        return self.process.pid if self.process else 0

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, stop: StopRequest, grace_s: float) -> None:
        """SIGTERM, then wait; another stop signal meanwhile is passed on (the child's own 'hurry'), and a child
        still running when the grace period ends is killed. Returns only when the child is gone."""
        if not self.running():
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        seen = stop.count
        deadline = time.monotonic() + grace_s
        while self.process.poll() is None:
            if stop.count > seen:
                seen = stop.count
                self.process.send_signal(signal.SIGTERM)  # a second signal makes the child exit at once
                deadline = min(deadline, time.monotonic() + 5.0)
            if time.monotonic() >= deadline:
                say(f"{self.name} did not stop within its grace period; killing it")
                self.process.kill()
                self.process.wait()
                return
            time.sleep(0.05)


def wait_ready(url: str, server: Child, stop: StopRequest, deadline_s: float = 60.0) -> bool:
    import httpx  # noqa: PLC0415

    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and not stop.count:
        if not server.running():
            return False
        try:
            if httpx.get(f"{url}/ready", timeout=1.0).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    return False


def supervise(server: Child, triggerer: Child, stop: StopRequest) -> int:
    """Keep both running until a stop signal (0) or the API server exiting (1); then stop both, triggerer first."""
    code = 0
    pause_s = 1.0
    restart_at: float | None = None
    while not stop.count:
        if (server_code := server.exited()) is not None:
            say(f"the API server exited with {server_code}; stopping")
            code = 1
            break
        now = time.monotonic()
        if restart_at is not None:
            if now >= restart_at:
                triggerer.start()
                say(f"triggerer started again, pid {triggerer.pid}")
                restart_at = None
        elif (triggerer_code := triggerer.exited()) is not None:
            if now - triggerer.started_at >= STABLE_AFTER_S:
                pause_s = 1.0
            say(f"the triggerer exited with {triggerer_code}; starting it again in {pause_s:.0f} s")
            restart_at = now + pause_s
            pause_s = min(pause_s * 2, RESTART_PAUSE_MAX_S)
        time.sleep(0.1)
    if stop.count:
        say(f"{stop.names[0]}: stopping the triggerer, then the API server")
    triggerer.stop(stop, TRIGGERER_GRACE_S)
    server.stop(stop, SERVER_GRACE_S)
    return code
