"""``tocsin triggerer``: flags and environment, configuration errors, and a lazy import of the triggerer."""

from __future__ import annotations

import subprocess
import sys

import pytest
import tocsin_cli as cli


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
        [sys.executable, "-m", "tocsin_cli", "triggerer", "--help"], capture_output=True, text=True, check=True
    )
    for flag in ("--api-url", "--token", "--capacity", "--runners", "--metrics-port", "--grace-period"):
        assert flag in result.stdout


@pytest.mark.parametrize("side", ["tocsin_client", "tocsin_server", "httpx", "litestar", "sqlalchemy"])
def test__the_command_root__imports_neither_side_until_a_command_runs(side: str) -> None:
    code = f"import sys, tocsin_cli; tocsin_cli.build_parser(); print(any(m.split('.')[0] == {side!r} for m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test__triggerer_flag_defaults__are_the_triggerer_configs() -> None:
    import dataclasses

    from tocsin_client.triggerer import TriggererConfig

    fields = {field.name: field.default for field in dataclasses.fields(TriggererConfig)}
    names = {
        "--capacity": "capacity",
        "--runners": "runners",
        "--grace-period": "grace_period_s",
        "--exit-on-lost-lease": "exit_on_lost_lease",
    }
    for option in cli.TRIGGERER_OPTIONS:
        if option.flag in names:
            assert option.default == fields[names[option.flag]], option.flag
