"""The import contracts in pyproject.toml ([tool.importlinter]) hold, and a wrong-way import breaks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOUSES = {"cli": "tocsin_cli", "server": "tocsin_server", "client": "tocsin_client", "wire": "tocsin_wire"}
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join([str(tree), *(str(tree / folder) for folder in HOUSES)])
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_of_the_tree(destination: Path) -> Path:
    for folder, package in HOUSES.items():
        shutil.copytree(
            ROOT / folder / package, destination / folder / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    for package in ("harness", "benchmarks", "tests"):
        shutil.copytree(ROOT / package, destination / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", destination / "pyproject.toml")
    return destination


def test__the_contracts_hold_on_this_tree() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "wrong_way", "contract"),
    [
        ("wire/tocsin_wire/headers.py", "import tocsin_server.config", "The shared leaf imports neither side"),
        (
            "server/tocsin_server/services/events.py",
            "import tocsin_client.errors",
            "Server and client never import each other",
        ),
        ("client/tocsin_client/demo.py", "import sqlalchemy", "The client side installs without the server stack"),
        (
            "server/tocsin_server/services/jobs.py",
            "import litestar",
            "Domain services know nothing of the web framework",
        ),
        (
            "server/tocsin_server/db/models.py",
            "import tocsin_server.api.jobs",
            "Inside the server: api -> services -> db",
        ),
        ("client/tocsin_client/commands.py", "import tocsin_cli.options", "Neither side imports the command"),
        ("benchmarks/events_bulk.py", "import tests.conftest", "Benchmarks never import the tests"),
    ],
    ids=[
        "leaf-imports-server",
        "server-imports-client",
        "client-imports-sqlalchemy",
        "service-imports-litestar",
        "db-imports-api",
        "side-imports-root",
        "benchmark-imports-tests",
    ],
)
def test__a_wrong_way_import__breaks_its_contract(tmp_path: Path, module: str, wrong_way: str, contract: str) -> None:
    tree = copy_of_the_tree(tmp_path)
    target = tree / module
    target.write_text(target.read_text() + f"\n{wrong_way}  # injected by the test\n")
    result = lint_imports(tree)
    assert result.returncode != 0, result.stdout
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(line.startswith(contract) for line in broken), result.stdout
