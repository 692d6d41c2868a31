"""Run ``mypy --strict`` (the project's configuration) on the usage files beside this one and expect no error.

docs/examples (the trigger module docs/triggers.md walks through) is checked the same way: the example users
copy type-checks as strictly as the SDK.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def test__client_usage_and_examples__type_check_under_mypy_strict() -> None:
    # pyproject's [tool.mypy] is strict, so warn_unused_ignores is on: a wrong call that stops being an error fails.
    command = [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml")]
    command += [str(HERE), str(REPO / "docs" / "examples")]
    result = subprocess.run(command, check=False, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
