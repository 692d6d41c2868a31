"""The README's commands, run as printed, in a fresh checkout, against the standalone that its first command starts.

Nothing is done the test's own way: the checkout installs itself (``scripts/standalone.sh``), the token is minted by
the README's own line in the standalone's folder, and the curl examples and the demo run exactly as written."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import children_of, wait_for_output, wait_gone

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
README_PORT = 8080  # the README's URL: the test uses it as printed


def block(name: str) -> str:
    match = re.search(rf"```bash {re.escape(name)}\n(?P<script>.*?)```", README.read_text(), re.DOTALL)
    assert match, f"README.md has no ```bash {name} block"
    return match.group("script")


def python_block(name: str) -> str:
    match = re.search(rf"```python {re.escape(name)}\n(?P<script>.*?)```", README.read_text(), re.DOTALL)
    assert match, f"README.md has no ```python {name} block"
    return match.group("script")


def curl_examples() -> str:
    return block("curl-examples")


def test__readme_names_every_runtime_endpoint() -> None:
    script = curl_examples()
    for path in (
        "/execution/connections/",
        "/execution/variables/",
        "/execution/xcoms/",
        "/execution/task-instances/states",
        "/execution/dag-runs/",
        "/execution/task-instances/$TI/state",
    ):
        assert path in script, path
    for verb in ("PUT", "DELETE", "POST", "PATCH"):
        assert f"-X {verb}" in script


def fresh_checkout(destination: Path) -> Path:
    """What a clone of this tree holds (tracked and new files, as they are now on disk), nothing built."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        relative = Path(os.fsdecode(raw))
        source = ROOT / relative
        if source.is_file():
            (destination / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / relative)
    return destination


def first_command(script: str) -> str:
    line = script.strip().splitlines()[0]
    return line.split("#", 1)[0].strip()


def user_env() -> dict[str, str]:
    """The user's shell: nothing of ours set (no TOCSIN_* variables, no virtualenv)."""
    drop = ("TOCSIN_", "VIRTUAL_ENV", "PYTEST_", "COVERAGE_")
    return {key: value for key, value in os.environ.items() if not key.startswith(drop)}


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.timeout(1200)  # the install (up to 600 s when loaded), the second terminal's 240 s, the stop's 100 s
def test__readme_commands_as_printed__in_a_fresh_checkout(tmp_path: Path) -> None:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", README_PORT)) == 0:
            pytest.fail(f"port {README_PORT}, which the README uses, is taken by another program on this machine")
    checkout = fresh_checkout(tmp_path / "tocsin")
    start = first_command(block("two-commands"))
    assert start == "scripts/standalone.sh"
    log = tmp_path / "standalone.log"
    with log.open("wb") as sink:
        # its own process group, as a terminal's foreground job: Ctrl-C goes to the whole group
        standalone = subprocess.Popen(
            ["bash", "-c", start],
            cwd=checkout,
            env=user_env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        output = wait_for_output(log, "registered job", standalone, 600)
        assert f"API:       http://127.0.0.1:{README_PORT}" in output
        children = children_of(standalone.pid)
        # the engine loop runs as a user would paste it into the checkout's Python, with TOCSIN_URL and TOKEN set
        engine_loop = f".venv/bin/python - <<'PY'\n{python_block('engine-loop')}PY"
        second_terminal = "\n".join(["set -euo pipefail", block("try-it"), curl_examples(), engine_loop, block("demo")])
        result = second_terminal_run(second_terminal, checkout, tmp_path, log, timeout_s=240)
        assert result.returncode == 0, failure_report(result, log)
        assert "Traceback" not in result.stderr
        assert '"state":"deferred"' in result.stdout
        assert '"classpath":"tocsin_client.triggers.TimeDeltaTrigger"' in result.stdout
        assert '"reason":"resumed"' in result.stdout  # the long poll answered with the task's resume
        assert "event: change" in result.stdout  # the SSE stream replayed the run's changes
        assert '"value":{"rows":42}' in result.stdout
        assert "wait resumed at version" in result.stdout  # the engine loop saw its task resume
        assert "resumed 1000/1000 tasks" in result.stdout
        os.killpg(standalone.pid, signal.SIGINT)  # Ctrl-C in the first terminal
        assert standalone.wait(timeout=90) == 0
        assert wait_gone(children, 10) == []
        assert "Traceback" not in log.read_text(errors="replace")
    finally:
        if standalone.poll() is None:
            os.killpg(standalone.pid, signal.SIGKILL)
            standalone.wait()


def second_terminal_run(
    script: str, checkout: Path, tmp_path: Path, log: Path, *, timeout_s: float
) -> subprocess.CompletedProcess[str]:
    """Run the second terminal's steps; its output goes to files, so what a step that never ends printed so far is
    shown with the standalone's log when it times out (a captured pipe would lose it)."""
    out_path, err_path = tmp_path / "second-terminal.out", tmp_path / "second-terminal.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        # Its own process group: on a timeout the step that hangs (a child of bash) is killed with it.
        terminal = subprocess.Popen(
            ["bash", "-c", script], cwd=checkout, env=user_env(), stdout=out, stderr=err, start_new_session=True
        )
        timed_out = False
        try:
            returncode = terminal.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(terminal.pid, signal.SIGKILL)
            returncode = terminal.wait()
    result = subprocess.CompletedProcess(
        terminal.args, returncode, out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
    )
    if timed_out:
        pytest.fail(f"the second terminal did not finish within {timeout_s} s\n{failure_report(result, log)}")
    return result


def failure_report(result: subprocess.CompletedProcess[str], log: Path) -> str:
    standalone = log.read_text(errors="replace")
    return (
        f"exit {result.returncode}\nstdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}\n"
        f"standalone log (last 6000 characters):\n{standalone[-6000:]}"
    )
