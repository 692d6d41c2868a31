"""Command-line flags declared once each: the flag, its help, its default and the ``TOCSIN_*`` variable that sets it.

``--help`` is built from the same declaration that resolves the value, so the two cannot disagree. A flag given on
the command line wins over its variable, which wins over the default. Variables are read when the command runs,
not when the parser is built.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class UsageError(ValueError):
    """A flag's variable holds a value the flag would refuse; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Option:
    flag: str
    help: str
    default: object = None
    """Shown in ``--help`` and used when neither the flag nor the variable is given (None: unset)."""
    env: str | None = None
    """The ``TOCSIN_*`` variable that sets this flag."""
    type: Callable[[str], Any] = str
    action: str | None = None
    """``"append"`` for a repeatable flag."""
    env_parse: Callable[[str], Any] | None = None
    """How the variable's text is read, when not as ``type`` (a list in one variable, say)."""
    required: bool = False
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def help_text(self) -> str:
        notes = []
        if self.default is not None:
            notes.append(f"default: {self.default}")
        if self.env:
            notes.append(f"env {self.env}")
        return f"{self.help} ({'; '.join(notes)})" if notes else self.help

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        extra: dict[str, Any] = {}
        if self.action:
            extra["action"] = self.action
        if self.action in (None, "append"):
            extra["type"] = self.type
            extra["metavar"] = self.metavar
        parser.add_argument(
            self.flag, dest=self.dest, default=None, required=self.required, help=self.help_text(), **extra
        )

    def resolve(self, given: object, env: Mapping[str, str]) -> object:
        """The flag's value: the command line, else the variable, else the default."""
        if given is not None:
            return given
        if self.env and (raw := env.get(self.env)) is not None:
            try:
                return (self.env_parse or self.type)(raw)
            except (ValueError, argparse.ArgumentTypeError) as exc:
                msg = f"{self.env}={raw!r} is not valid: {exc}"
                raise UsageError(msg) from None
        if isinstance(self.default, str) and self.type is not str:
            return self.type(self.default)  # as argparse does: a default written as text is converted
        return self.default


def add_options(parser: argparse.ArgumentParser, options: Iterable[Option]) -> None:
    options = tuple(options)
    for option in options:
        option.add_to(parser)
    parser.set_defaults(_options=options)


def resolve_options(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> argparse.Namespace:
    """Fill every declared flag of the chosen command from its variable or default, in place."""
    env = os.environ if env is None else env
    for option in getattr(args, "_options", ()):
        setattr(args, option.dest, option.resolve(getattr(args, option.dest), env))
    return args
