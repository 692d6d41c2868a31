"""The triggerer speaks HTTP only: importing it pulls in no server code and no database driver."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("tocsin_server", "sqlalchemy", "asyncpg", "aiosqlite", "alembic", "advanced_alchemy", "litestar")


def test__importing_the_triggerer__loads_no_server_code_and_no_database_driver() -> None:
    code = (
        "import json, sys\n"
        "import tocsin_client.triggerer, tocsin_client.triggerer.runner, tocsin_client.triggerer.supervisor\n"
        "import tocsin_client.triggerer.metrics, tocsin_client.triggers\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = json.loads(result.stdout)
    leaked = [name for name in modules if name.split(".")[0] in FORBIDDEN]
    assert leaked == []
    assert "tocsin_client.triggerer.supervisor" in modules


def test__the_runner_process_entry_point__loads_no_server_code() -> None:
    code = "import json, sys\nimport tocsin_client.triggerer.runner\nprint(json.dumps(sorted(sys.modules)))\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = json.loads(result.stdout)
    assert [name for name in modules if name.split(".")[0] in FORBIDDEN] == []
    assert "prometheus_client" not in modules  # only the supervisor imports it, and only with --metrics-port
