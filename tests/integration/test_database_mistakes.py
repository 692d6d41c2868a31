"""Issue 7, A4: a database mistake at start is one line naming TOCSIN_DATABASE_URL, the problem and the fix.

The real ``tocsin`` command, as a user runs it. Before the fix each of these printed a 65-112-line traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from harness.databases import POSTGRES_ADMIN_DSN
from harness.live_server import free_port
from tests.conftest import SECRET

TOCSIN = str(Path(sys.executable).with_name("tocsin"))
_POSTGRES = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)


def _missing_database(_: Path) -> str:
    return f"{_POSTGRES}/tocsin_missing_{uuid.uuid4().hex[:8]}"


def _nothing_listening(_: Path) -> str:
    return f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/tocsin"


def _sync_sqlite(folder: Path) -> str:
    return f"sqlite:///{folder / 'tocsin.db'}"


def _missing_folder(folder: Path) -> str:
    return f"sqlite+aiosqlite:///{folder / 'no-such-folder' / 'tocsin.db'}"


MISTAKES = {
    "postgres database missing": (_missing_database, ("has no database", "createdb")),
    "nothing listening": (_nothing_listening, ("nothing is listening", "start PostgreSQL")),
    "sqlite without aiosqlite": (_sync_sqlite, ("aiosqlite", "use sqlite+aiosqlite:///")),
    "sqlite folder missing": (_missing_folder, ("does not exist", "mkdir -p")),
}
COMMANDS = {
    "api-server": lambda: ["api-server", "--host", "127.0.0.1", "--port", str(free_port())],
    "api-server --workers 2": lambda: ["api-server", "--port", str(free_port()), "--workers", "2"],
    "db upgrade": lambda: ["db", "upgrade"],
    "standalone": lambda: ["standalone", "--host", "127.0.0.1", "--port", str(free_port())],
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("mistake", MISTAKES)
def test__a_database_mistake_is_one_line_and_exit_2(tmp_path: Path, mistake: str, command: str) -> None:
    make_url, expected = MISTAKES[mistake]
    url = make_url(tmp_path)
    env = {**os.environ, "TOCSIN_DATABASE_URL": url, "TOCSIN_JWT_SECRET": SECRET}
    result = subprocess.run(
        [TOCSIN, *COMMANDS[command]()],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert len(lines) == 1, result.stderr[-3000:]
    (line,) = lines
    assert "Traceback" not in line
    assert "TOCSIN_DATABASE_URL" in line
    for fragment in expected:
        assert fragment in line, line
    assert not (tmp_path / "no-such-folder").exists()
