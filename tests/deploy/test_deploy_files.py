"""The files of docs/deploy/ are what their tools accept: haproxy's verdict on haproxy.cfg, systemd's on the
units, tocsin's own parser on the commands they run, the README's settings table on the variables they set.

Cheap (about a second); test_multi_replica.py runs the same files for real.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from tocsin_cli import build_parser

from harness.haproxy import HaproxyUnavailableError, check_config, ensure_haproxy
from harness.systemd_units import Unit, UnitError
from tests.deploy.deployment import (
    API_SERVER_UNIT,
    DOC_BINARY,
    DOCS,
    MIGRATE_UNIT,
    REPO,
    TRIGGERER_UNIT,
)

UNITS = (MIGRATE_UNIT, API_SERVER_UNIT, TRIGGERER_UNIT)
_VARIABLE = re.compile(r"\bTOCSIN_[A-Z0-9_]*[A-Z0-9]\b")


@pytest.fixture(scope="module")
def haproxy_binary() -> str:
    try:
        return ensure_haproxy()
    except HaproxyUnavailableError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize(
    "env",
    [{}, {"LB_BIND": "127.0.0.1:18080", "LB_SERVER_1": "10.0.0.1:8081", "LB_SERVER_2": "[::1]:9000"}],
    ids=["as-written", "variables-set"],
)
def test__haproxy_accepts_the_config(haproxy_binary: str, env: dict[str, str]) -> None:
    verdict = check_config(haproxy_binary, DOCS / "haproxy.cfg", env)
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    assert "WARNING" not in verdict.stdout + verdict.stderr, verdict.stdout + verdict.stderr


def test__haproxy_checks_readiness_not_liveness() -> None:
    """/ready fails while the replica cannot reach PostgreSQL at its migration; /health would not."""
    config = (DOCS / "haproxy.cfg").read_text()
    assert "http-check send meth GET uri /ready" in config
    assert re.search(r"^\s*server \S+ .* check$", config, re.MULTILINE)


def test__systemd_accepts_the_units(tmp_path: Path) -> None:
    """``systemd-analyze verify`` (no running systemd needed), with the install path pointing at a real file."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian's systemd package)")
    binary = shutil.copy(shutil.which("true") or "/bin/true", tmp_path / "tocsin")  # verify: "is it executable?"
    for name in UNITS:
        text = (DOCS / name).read_text().replace(DOC_BINARY, str(binary))
        (tmp_path / name.replace("@.", "@8081.")).write_text(text)
    verdict = subprocess.run(
        [analyze, "verify", *map(str, sorted(tmp_path.glob("*.service")))], capture_output=True, text=True, check=False
    )
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    assert not (verdict.stdout + verdict.stderr).strip(), verdict.stdout + verdict.stderr


@pytest.mark.parametrize("name", UNITS)
def test__each_unit_runs_a_tocsin_command_with_known_variables(name: str) -> None:
    command = Unit.read(DOCS / name).command("ExecStart", instance="8081")
    assert command.argv[0] == DOC_BINARY
    build_parser().parse_args(command.argv[1:])  # an unknown command or flag exits 2 here
    documented = set(_VARIABLE.findall((REPO / "README.md").read_text()))
    assert set(command.environment) <= documented, command.environment
    assert command.environment_files, f"{name} reads no EnvironmentFile: where would its secrets come from?"


def test__the_unit_reader_refuses_what_it_would_run_differently(tmp_path: Path) -> None:
    unit = tmp_path / "x.service"
    for line, refused in [
        ("ExecStart=-/bin/tocsin api-server", "prefix"),
        ("ExecStart=/bin/tocsin api-server --port $PORT", "expands a variable"),
        ("ExecStart=/bin/tocsin api-server --host %H", "specifier %H"),
        ("ExecStart=/bin/tocsin api-server \\\n  --port 1", "continues on another line"),
    ]:
        unit.write_text(f"[Service]\n{line}\n")
        with pytest.raises(UnitError, match=refused):
            Unit.read(unit).command("ExecStart")
    unit.write_text("[Service]\nEnvironment=A=1\nEnvironment=B=2\nExecStart=/bin/true\n")
    with pytest.raises(UnitError, match="one Environment= line"):
        Unit.read(unit)
