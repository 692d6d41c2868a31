"""Every ``TOCSIN_*`` variable the code reads is in the README, and every flag of every command says what it does,
its default and the variable that sets it."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tocsin_cli import build_parser
from tocsin_client.triggerer import TriggererConfig
from tocsin_server.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    ROOT / "cli" / "tocsin_cli",
    ROOT / "server" / "tocsin_server",
    ROOT / "client" / "tocsin_client",
    ROOT / "wire" / "tocsin_wire",
]
_LITERAL = re.compile(r"\bTOCSIN_[A-Z0-9_]*[A-Z0-9]\b")
_COMPOSED = re.compile(r"_(?:read|number)\(env, \"(?P<name>[A-Z0-9_]+)\"")
SETTINGS_COMMANDS = {"api-server", "standalone", "triggerer"}
"""Commands whose every flag is a setting with a variable (the others take per-call arguments)."""


class RecordingEnv(dict[str, str]):
    """An empty environment that remembers every variable asked for."""

    def __init__(self, **values: str) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.asked.add(key)
        return super().__contains__(key)


def read_by_code() -> set[str]:
    names: set[str] = set()
    for folder in SOURCES:
        for path in folder.rglob("*.py"):
            if "generated" in path.parts:
                continue
            text = path.read_text()
            names.update(_LITERAL.findall(text))
            names.update(f"TOCSIN_{match['name']}" for match in _COMPOSED.finditer(text))
    server_env = RecordingEnv(TOCSIN_JWT_SECRET="s" * 40)
    load_settings(server_env)
    triggerer_env = RecordingEnv(TOCSIN_API_URL="http://127.0.0.1:1", TOCSIN_TOKEN="t")
    TriggererConfig.from_env(triggerer_env)
    from tocsin_client.commands import DemoSettings
    from tocsin_wire.settings import load

    demo_env = RecordingEnv()
    load(DemoSettings, demo_env)
    asked = server_env.asked | triggerer_env.asked | demo_env.asked
    return names | {n for n in asked if n.startswith("TOCSIN_")}


def test__the_readme_lists_every_variable_the_code_reads() -> None:
    readme = (ROOT / "README.md").read_text()
    names = read_by_code()
    assert len(names) > 25, names  # the scan sees the loaders' variables, not only literals
    missing = sorted(name for name in names if f"`{name}`" not in readme)
    assert not missing, f"README.md does not list: {', '.join(missing)}"


def test__the_scan_sees_a_variable_read_only_by_name_composition() -> None:
    # a guard against the check going blind: these are only ever spelled as f"TOCSIN_{name}" in config.py
    names = read_by_code()
    assert {"TOCSIN_MAX_CLAIMS_PER_CALL", "TOCSIN_TIMEOUT_CHECK_INTERVAL_S", "TOCSIN_MAX_LOG_LINE_BYTES"} <= names


def commands(parser: argparse.ArgumentParser, path: str = "") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, f"{path} {name}".strip())
    if path:
        yield path, parser


def flags(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        action
        for action in parser._actions
        if action.option_strings and not isinstance(action, argparse._HelpAction | argparse._VersionAction)
    ]


@pytest.mark.parametrize(("command", "parser"), list(commands(build_parser())), ids=str)
def test__every_flag_has_help_a_default_and_its_variable(command: str, parser: argparse.ArgumentParser) -> None:
    for action in flags(parser):
        assert action.help and len(action.help) > 10, f"tocsin {command} {action.option_strings[0]}: no help"
        if not action.required:
            assert "default:" in action.help or "env TOCSIN_" in action.help, (command, action.help)
        if command in SETTINGS_COMMANDS:
            assert re.search(r"env TOCSIN_[A-Z_]+", action.help), f"tocsin {command} {action.option_strings[0]}"


def test__a_flags_variable_sets_it_and_the_flag_wins() -> None:
    from tocsin_cli.options import resolve_options

    args = resolve_options(build_parser().parse_args(["api-server"]))
    assert args.port is None  # the command line leaves it to the settings loader
    env = {"TOCSIN_JWT_SECRET": "s" * 40, "TOCSIN_PORT": "9999"}
    assert load_settings(env, port=args.port).port == 9999
    assert load_settings(env, port=7000).port == 7000
    assert load_settings({"TOCSIN_JWT_SECRET": "s" * 40}, port=None).port == 8080


def _setting_defaults() -> dict[str, object]:
    """Variable → default, from every settings class the flags of the command line end up in."""
    import dataclasses

    from tocsin_client.commands import DemoSettings
    from tocsin_server.config import Settings
    from tocsin_wire.settings import variables

    defaults: dict[str, object] = {}
    for cls in (Settings, DemoSettings, TriggererConfig):
        fields = {field.name: field.default for field in dataclasses.fields(cls)}
        for name, variable in variables(cls).items():
            defaults.setdefault(variable, fields[name])
    return defaults


@pytest.mark.parametrize(("command", "parser"), list(commands(build_parser())), ids=str)
def test__the_default_a_flag_shows__is_its_settings_default(command: str, parser: argparse.ArgumentParser) -> None:
    defaults = _setting_defaults()
    for option in getattr(parser.get_default("_options"), "__iter__", lambda: iter(()))():
        if option.env is None or option.default is None:
            continue
        assert option.env in defaults, f"tocsin {command} {option.flag}: no setting reads {option.env}"
        assert option.default == defaults[option.env], (command, option.flag)


def test__version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--version"])
    assert exited.value.code == 0
    assert re.fullmatch(r"tocsin \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)
