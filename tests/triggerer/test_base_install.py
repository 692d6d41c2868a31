"""The base install (``pip install tocsin``: the SDK and the triggerer, no server stack) in a virtualenv of its own,
working against an API server installed elsewhere: what a platform team puts on its triggerer hosts and engines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from tocsin_server.web.tokens import TokenAuthority

from harness.live_server import LiveServer
from tests.triggerer.e2e_support import Tasks, poll

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtualenv with ``pip install tocsin`` (no extras) from this tree, with the pinned versions."""
    venv = tmp_path_factory.mktemp("base-install") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-c",
            str(ROOT / "constraints.txt"),
            str(ROOT),
        ],
        env={**os.environ, "PIP_CONSTRAINT": str(ROOT / "constraints.txt")},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    yield venv


def run_in(venv: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TOCSIN_", "PYTHONPATH", "VIRTUAL_ENV"))}
    return subprocess.run(
        [str(venv / "bin" / argv[0]), *argv[1:]],
        env={**clean, **env},
        cwd=venv.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("module", ["litestar", "sqlalchemy", "alembic", "advanced_alchemy", "aiosqlite", "jwt"])
def test__the_server_stack_is_not_installed(base_venv: Path, module: str) -> None:
    result = run_in(base_venv, "python", "-c", f"import {module}")
    assert result.returncode != 0
    assert "ModuleNotFoundError" in result.stderr


def test__triggerer_help_runs(base_venv: Path) -> None:
    result = run_in(base_venv, "tocsin", "triggerer", "--help")
    assert result.returncode == 0, result.stderr
    assert "--capacity" in result.stdout


@pytest.mark.parametrize("command", [["api-server"], ["db", "current"], ["token", "create", "--scope", "admin"]])
def test__a_server_command__says_which_extra_to_install(base_venv: Path, command: list[str]) -> None:
    result = run_in(base_venv, "tocsin", *command)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "pip install 'tocsin[server]'" in line


def test__an_sdk_call_against_a_server_installed_elsewhere(
    base_venv: Path, live: LiveServer, authority: TokenAuthority
) -> None:
    script = textwrap.dedent(
        """
        import sys
        from tocsin_client import Client
        from tocsin_client.generated import models

        with Client(sys.argv[1], token=sys.argv[2]) as tocsin:
            tocsin.put_variable("from-the-base-install", models.VariableBody(value="hello"))
            print(tocsin.get_variable("from-the-base-install").value)
        """
    )
    token = authority.issue("base", ["admin", "worker"], 600)
    result = run_in(base_venv, "python", "-c", script, live.url, token)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello"


def test__a_triggerer_from_the_base_install_completes_a_fire(
    base_venv: Path,
    start_server: Callable[..., LiveServer],
    tasks_for: Callable[[str], Tasks],
    authority: TokenAuthority,
    tmp_path: Path,
) -> None:
    server = start_server()
    tasks = tasks_for(server.url)
    ti_id = tasks.defer("tocsin_client.triggers.TimeDeltaTrigger", {"delta": timedelta(seconds=0.5)})
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TOCSIN_", "PYTHONPATH", "VIRTUAL_ENV"))}
    log = tmp_path / "base-triggerer.log"
    with log.open("wb") as sink:
        triggerer = subprocess.Popen(
            [str(base_venv / "bin" / "tocsin"), "triggerer", "--api-url", server.url],
            env={**clean, "TOCSIN_TOKEN": authority.issue("base", ["triggerer"], 600)},
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        poll(lambda: tasks.get(ti_id).state.value == "scheduled", 60, "the task resumed")
        assert tasks.get(ti_id).next_method == "execute_complete"
    finally:
        triggerer.send_signal(signal.SIGTERM)
        triggerer.wait(timeout=30)
    assert "Traceback" not in log.read_text(errors="replace")
