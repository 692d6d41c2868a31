"""The README's curl examples run as written against a live server, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from tocsin_server.tokens import TokenAuthority

from tests.support.live_server import LiveServer

README = Path(__file__).resolve().parents[2] / "README.md"
_BLOCK = re.compile(r"```bash curl-examples\n(?P<script>.*?)```", re.DOTALL)


def curl_examples() -> str:
    match = _BLOCK.search(README.read_text())
    assert match, "README.md has no ```bash curl-examples block"
    return match.group("script")


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


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test__readme_curl_examples_run_against_a_live_server(live: LiveServer, authority: TokenAuthority) -> None:
    token = authority.issue("readme", ["admin", "worker"], 600)
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "TOCSIN_URL": live.url, "TOKEN": token}
    result = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + curl_examples()],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert '"state":"deferred"' in result.stdout
    assert '"classpath":"tocsin_client.triggers.TimeDeltaTrigger"' in result.stdout
    assert '"value":{"rows":42}' in result.stdout
