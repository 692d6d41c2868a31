"""The systemd units in docs/deploy/, read so a test runs the very commands they hold.

A unit is read with the standard library's ``configparser`` (systemd's syntax for these files: sections,
``Key=Value`` lines, ``#`` comments), strictly: a key given twice is refused, so each unit keeps its variables
on one ``Environment=`` line. Values are split as systemd splits them for these simple forms (shell-like words
and quotes, ``shlex``). Anything the reader would have to guess at — an ``Exec`` prefix (``-``, ``@``, ``+``,
``!``), a ``$VARIABLE`` expansion, a specifier other than the instance's ``%i`` — is refused with the unit
named, so the documented files cannot drift into something the test silently runs differently.

What the test may change is only where things are: ``replace`` maps literal text (an install path, a config
folder, an address) to the test's own; the test checks that none of the documented places is left.
"""

from __future__ import annotations

import configparser
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_SPECIFIER = re.compile(r"%.")


class UnitError(ValueError):
    """The unit uses a form this reader does not run; the message names the unit and the line."""


@dataclass(frozen=True)
class ServiceCommand:
    """What systemd would run for one ``Exec*`` line: the argument vector and the unit's own variables."""

    argv: list[str]
    environment: dict[str, str]
    environment_files: list[Path]


@dataclass(frozen=True)
class Unit:
    path: Path
    sections: Mapping[str, Mapping[str, str]]

    @classmethod
    def read(cls, path: Path) -> Unit:
        parser = configparser.RawConfigParser(delimiters=("=",), comment_prefixes=("#", ";"), strict=True)
        parser.optionxform = str  # type: ignore[assignment, method-assign]  # systemd keys are case-sensitive
        try:
            parser.read_string(path.read_text(), source=str(path))
        except configparser.Error as exc:
            msg = f"{path.name}: {exc} (keep each key once: several variables go on one Environment= line)"
            raise UnitError(msg) from None
        return cls(path, {name: dict(parser.items(name)) for name in parser.sections()})

    def value(self, section: str, key: str) -> str | None:
        return self.sections.get(section, {}).get(key)

    def _expand(self, key: str, raw: str, instance: str, replace: Mapping[str, str]) -> str:
        if "\n" in raw or raw.endswith("\\"):
            msg = f"{self.path.name}: {key}= continues on another line; keep it on one"
            raise UnitError(msg)
        text = raw.replace("%i", instance)
        if found := _SPECIFIER.search(text):
            msg = f"{self.path.name}: {key}= uses the specifier {found.group()}; only %i is substituted"
            raise UnitError(msg)
        if "$" in text:
            msg = f"{self.path.name}: {key}= expands a variable ($); write the value out"
            raise UnitError(msg)
        for old, new in replace.items():
            text = text.replace(old, new)
        return text

    def command(self, key: str, *, instance: str = "", replace: Mapping[str, str] | None = None) -> ServiceCommand:
        """The ``[Service]`` line ``key`` (``ExecStart``, ``ExecStartPre``) as systemd would run it."""
        replace = replace or {}
        raw = self.value("Service", key)
        if not raw:
            msg = f"{self.path.name} has no {key}= command"
            raise UnitError(msg)
        if raw[0] in "-@+!:":
            msg = f"{self.path.name}: {key}= starts with the prefix {raw[0]!r}, which this reader does not run"
            raise UnitError(msg)
        argv = shlex.split(self._expand(key, raw, instance, replace))
        environment: dict[str, str] = {}
        for word in shlex.split(
            self._expand("Environment", self.value("Service", "Environment") or "", instance, replace)
        ):
            name, equals, value = word.partition("=")
            if not equals:
                msg = f"{self.path.name}: Environment= word {word!r} is not NAME=VALUE"
                raise UnitError(msg)
            environment[name] = value
        files = self.value("Service", "EnvironmentFile")
        if files is not None and (files[:1] == "-" or " " in files.strip()):
            msg = f"{self.path.name}: EnvironmentFile= must name one file that exists (no '-' prefix)"
            raise UnitError(msg)
        environment_files = [] if files is None else [Path(self._expand("EnvironmentFile", files, instance, replace))]
        return ServiceCommand(argv, environment, environment_files)
