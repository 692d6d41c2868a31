"""``tocsin triggerer``: flags and environment, configuration errors, and a lazy import of the triggerer."""

from __future__ import annotations

import subprocess
import sys

import pytest
from tocsin_server import cli


def test__triggerer__without_a_token__exits_2_naming_the_setting(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOCSIN_TOKEN", raising=False)
    code = cli.main(["triggerer", "--api-url", "http://127.0.0.1:1", "--capacity", "5"])
    assert code == 2
    assert "a token is required (--token or TOCSIN_TOKEN)" in capsys.readouterr().err


def test__triggerer__bad_flags_and_env__are_all_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOCSIN_API_URL", "ftp://nowhere")
    monkeypatch.setenv("TOCSIN_TOKEN", "t")
    assert cli.main(["triggerer", "--runners", "0"]) == 2
    err = capsys.readouterr().err
    assert "api_url 'ftp://nowhere'" in err
    assert "runners 0" in err


def test__triggerer__help_lists_the_flags() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tocsin_server.cli", "triggerer", "--help"], capture_output=True, text=True, check=True
    )
    for flag in ("--api-url", "--token", "--capacity", "--runners", "--metrics-port", "--grace-period"):
        assert flag in result.stdout


def test__cli_module__imports_the_triggerer_only_when_asked() -> None:
    code = "import sys, tocsin_server.cli; print(any(m.startswith('tocsin_client.triggerer') for m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
