"""The unreleased contract passes Spectral (spectral:oas) and Redocly (recommended) with no error and no warning.

``.ci/run`` runs ``tools/contract-lint/run`` itself; this test runs it too, so ``scripts/test.sh`` catches a lint
finding on a machine with Node.js, and proves the gate fails on a spec that breaks the repository's own rules.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from tocsin_server.web.spec import load_spec
from tocsin_server.web.versioning import LATEST

RUN = Path(__file__).parents[2] / "tools" / "contract-lint" / "run"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("npm") is None, reason="needs Node.js and npm (.ci/run installs them)"),
]


def _lint(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(RUN), *args], capture_output=True, text=True, timeout=600, check=False)


def test__latest_spec__has_no_lint_errors_or_warnings() -> None:
    result = _lint()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 errors, 0 warnings" in result.stdout


def test__an_operation_without_security_or_with_an_unknown_scope__fails_the_gate(tmp_path: Path) -> None:
    spec = copy.deepcopy(load_spec(LATEST))
    del spec["paths"]["/api/v1/dag-runs"]["get"]["security"]
    spec["paths"]["/api/v1/dag-runs"]["post"]["security"] = [{"bearer": ["root"]}]
    del spec["info"]["contact"]
    broken = tmp_path / f"{LATEST}.yaml"
    broken.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = _lint(str(broken))
    assert result.returncode == 1
    for rule in ("tocsin-operation-security-declared", "tocsin-operation-security-defined", "info-contact"):
        assert rule in result.stdout, result.stdout
