"""End to end (real API servers, a real triggerer, SQLite): signing keys rotate while triggers keep firing.

The rotation is docs/operations.md's ``key-rotation`` block, run as printed in one shell, twice: from today's
single secret to a keyring (its first ``add`` imports the secret as ``legacy``; the servers restart, one after
the other, to read the file) and then from key to key (the server re-reads the file by itself). A recording
proxy between the triggerer and the server shows which key signed each token the triggerer holds: its job
token and the task-instance token of a trigger that reads a variable every 0.25 s through the whole run.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from tocsin_client import Client, serde
from tocsin_client.generated.models import VariableBody
from tocsin_server.signing_keys import KeyringSource
from tocsin_server.web.tokens import TokenAuthority

from harness.live_server import LiveServer, live_server
from tests.conftest import SECRET
from tests.triggerer.e2e_support import FAST, P, Tasks, Triggerer, poll
from tests.triggerer.http_recorder import Exchange, RecordingProxy, kid_of

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
BIN = Path(sys.executable).parent
TTL_S = "2"
"""Job and task-instance tokens live 2 s, so a live triggerer is refreshed onto a new key within about 1 s."""


def rotation_steps() -> list[str]:
    match = re.search(r"```bash key-rotation\n(?P<script>.*?)```", DOCS.read_text(), re.DOTALL)
    assert match, "docs/operations.md has no ```bash key-rotation block"
    steps = [line for line in match["script"].splitlines() if line.strip() and not line.lstrip().startswith("#")]
    starts = [
        "NEW=$(tocsin key signing add",
        "OLD=$(tocsin key signing list",
        "tocsin key signing promote",
        "tocsin key signing retire",
    ]
    assert [step.startswith(start) for step, start in zip(steps, starts, strict=True)] == [True] * 4, steps
    return steps


class Shell:
    """One bash session the steps run in, in order, so ``NEW`` and ``OLD`` carry from one step to the next."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=cwd,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.said: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def run(self, step: str, timeout_s: float = 20.0) -> str:
        assert self.process.stdin is not None
        marker = f"__step_done_{len(self.said)}__"
        self.process.stdin.write(f"{step}\necho {marker} $?\n")
        self.process.stdin.flush()
        out: list[str] = []
        while True:
            try:
                line = self.lines.get(timeout=timeout_s)
            except queue.Empty:
                pytest.fail(f"{step!r} did not finish within {timeout_s} s: {''.join(out)}")
            if line.startswith(marker):
                said = "".join(out)
                self.said.append(said)
                assert line.split()[1] == "0", f"{step!r} failed: {said}"
                return said
            out.append(line)

    def value(self, name: str) -> str:
        return self.run(f'echo "{name}=${name}"').strip().removeprefix(f"{name}=")

    def close(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        self.process.wait(timeout=10)
        self.process.stdout.close()


@pytest.fixture
def shells() -> Iterator[Callable[[dict[str, str], Path], Shell]]:
    made: list[Shell] = []

    def make(env: dict[str, str], cwd: Path) -> Shell:
        made.append(Shell(env, cwd))
        return made[-1]

    yield make
    for shell in made:
        if shell.process.poll() is None:
            shell.process.kill()
        shell.close()


@pytest.fixture
def proxy() -> Iterator[RecordingProxy]:
    """Requested before ``start_triggerer``, so it closes after the triggerer has stopped."""
    recorder = RecordingProxy()
    yield recorder
    recorder.close()


@pytest.fixture
def servers(clean_database: str, tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start an API server; once it is ready, ``switch`` sends the traffic to it and the one before stops (a
    rolling restart: no request finds no server)."""
    with contextlib.ExitStack() as stack:
        running: list[contextlib.ExitStack] = []

        def start(switch: Callable[[LiveServer], None], **env: str) -> LiveServer:
            one = contextlib.ExitStack()
            log = tmp_path / f"server-{len(running)}.log"
            extra = {**FAST, "TOCSIN_JOB_TOKEN_TTL_S": TTL_S, "TOCSIN_TI_TOKEN_TTL_S": TTL_S, **env}
            server = one.enter_context(live_server(clean_database, SECRET, log, extra))
            switch(server)
            if running:
                running[-1].close()
            running.append(one)
            stack.push(one)
            return server

        yield start


def token_create(env: dict[str, str], cwd: Path, *scopes: str) -> str:
    flags = [part for scope in scopes for part in ("--scope", scope)]
    done = subprocess.run(
        [BIN / "tocsin", "token", "create", *flags], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def answers(proxy_url: str, token: str) -> httpx.Response:
    return httpx.get(f"{proxy_url}/api/v1/jobs", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def triggerer_side(exchanges: list[Exchange]) -> list[Exchange]:
    """The requests the triggerer made: with its job token or with a trigger's task-instance token."""
    return [e for e in exchanges if e.token and ("job:" in e.scope or "ti:" in e.scope)]


def moved_to(proxy: RecordingProxy, kid: str, since: int) -> bool:
    """Since exchange ``since``, the triggerer used a job token and a task-instance token that ``kid`` signed."""
    recent = triggerer_side(proxy.seen()[since:])
    return any("job:" in e.scope and e.kid == kid for e in recent) and any(
        "ti:" in e.scope and e.kid == kid for e in recent
    )


def fires(tasks: Tasks) -> None:
    """A new deferral is claimed, fires and is applied: the task is scheduled with the event."""
    ti = tasks.wait_state(tasks.defer(f"{P}.FireNow", {"value": "ok"}), "scheduled", timeout_s=20)
    assert ti.next_kwargs is not None and serde.deserialize(ti.next_kwargs["event"]) == {"value": "ok"}


def test__two_rotations__live_tokens_keep_working_and_retired_ones_get_401(
    proxy: RecordingProxy,
    shells: Callable[[dict[str, str], Path], Shell],
    servers: Callable[..., LiveServer],
    start_triggerer: Callable[..., Triggerer],
    authority: TokenAuthority,
    tmp_path: Path,
) -> None:
    keys = tmp_path / "jwt-keys.json"
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "TOCSIN_JWT_SECRET": SECRET,  # today's configuration, what the first `add` imports
        "TOCSIN_JWT_KEYS_FILE": str(keys),
    }
    steps = rotation_steps()
    shell = shells(env, tmp_path)
    server = servers(proxy.send_to)  # one secret: TOCSIN_JWT_SECRET, no keyring
    admin_before = authority.issue("admin-before", ["admin", "worker"], 3600)  # no kid, as always
    assert kid_of(admin_before) is None
    tasks = Tasks(proxy.url, admin_before)
    tasks.client.put_variable("tick", VariableBody(value="go"))
    reader = tasks.defer(f"{P}.ReadsVariableUntil", {"key": "tick", "every": 0.25})
    triggerer = start_triggerer(proxy.url, TOCSIN_TRIGGERER_CYCLE_INTERVAL="0.2")
    poll(lambda: any("ti:" in e.scope for e in proxy.seen()), 20, "the reader reads with its task-instance token")
    assert {e.kid for e in triggerer_side(proxy.seen())} == {None}  # one secret: no kid, as always

    # first rotation: from one secret to a keyring; the servers restart once to read it
    shell.run(steps[0])
    new = shell.value("NEW")
    server = servers(proxy.send_to, TOCSIN_JWT_KEYS_FILE=str(keys), TOCSIN_JWT_KEYS_RELOAD_S="0.2")
    shell.run(steps[1])
    assert shell.value("OLD") == "legacy"
    fires(tasks)  # the triggerer's job token from the old server, and the kid-less admin token, verify
    since = len(proxy.seen())
    poll(lambda: moved_to(proxy, "legacy", since), 20, "tokens the restarted server refreshed carry kid legacy")

    shell.run(steps[2])  # promote
    since = len(proxy.seen())
    poll(lambda: moved_to(proxy, new, since), 20, f"the triggerer's tokens refreshed onto {new}")
    admin_new = token_create(env, tmp_path, "admin", "worker")
    assert kid_of(admin_new) == new
    assert answers(proxy.url, admin_before).status_code == 200  # the old key still verifies
    fires(tasks)
    assert "signing keys reloaded" in server.log.read_text()

    shell.run(steps[3])  # retire legacy
    gone = poll(lambda: (r := answers(proxy.url, admin_before)).status_code == 401 and r, 10, "legacy retired")
    assert "carries no key id (kid)" in gone.json()["detail"]
    tasks.client.close()
    tasks.client = Client(proxy.url, token=admin_new)
    fires(tasks)

    # second rotation: key to key, no restart
    shell.run(steps[0])
    newer = shell.value("NEW")
    shell.run(steps[1])
    assert shell.value("OLD") == new
    shell.run(steps[2])
    since = len(proxy.seen())
    poll(lambda: moved_to(proxy, newer, since), 20, f"the triggerer's tokens refreshed onto {newer}")
    assert answers(proxy.url, admin_new).status_code == 200
    shell.run(steps[3])  # retire the first rotation's key
    gone = poll(lambda: (r := answers(proxy.url, admin_new)).status_code == 401 and r, 10, f"{new} retired")
    assert gone.headers["content-type"] == "application/problem+json"
    assert f"key id (kid) {new!r} is unknown to this server" in gone.json()["detail"]
    admin_newer = TokenAuthority("", issuer="tocsin", audience="tocsin", keyring=KeyringSource.open(keys, 60)).issue(
        "admin-newer", ["admin", "worker"], 600
    )
    assert kid_of(admin_newer) == newer
    tasks.client.close()
    tasks.client = Client(proxy.url, token=admin_newer)
    fires(tasks)

    # the reader read through both rotations with its refreshed task-instance token, and its event applies
    tasks.client.put_variable("tick", VariableBody(value="stop"))
    ti = tasks.wait_state(reader, "scheduled", timeout_s=20)
    assert ti.next_kwargs is not None and serde.deserialize(ti.next_kwargs["event"]) >= 5
    seen = proxy.seen()
    assert not [e for e in triggerer_side(seen) if e.status >= 400], "the triggerer was refused"
    assert not [e for e in seen if e.status >= 500]
    assert triggerer.process.poll() is None, triggerer.output()[-3000:]
    tasks.client.close()
