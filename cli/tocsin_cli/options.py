"""Command-line flags declared once each: the flag, its help, its default and the ``TOCSIN_*`` variable that sets it.

``--help`` is built from these declarations. The command line never reads the environment itself: a flag that a
variable sets reaches its side as None unless given, and that side's settings loader reads the variable and
applies the default, so a flag wins over its variable, which wins over the default.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


class UsageError(ValueError):
    """The command cannot run as asked (its side is not installed, say); the message says why."""


@dataclass(frozen=True, slots=True)
class Option:
    flag: str
    help: str
    default: object = None
    """Shown in ``--help`` and used when neither the flag nor the variable is given (None: unset)."""
    env: str | None = None
    """The ``TOCSIN_*`` variable that sets this flag, read by the settings loader of the flag's side
    (``tocsin_wire.settings``), which also holds the default shown here (a test keeps the two equal)."""
    type: Callable[[str], Any] = str
    action: str | None = None
    """``"append"`` for a repeatable flag."""
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

    def resolve(self, given: object) -> object:
        """The flag's value: the command line, else — for a flag a variable sets — None, so that the settings
        loader of its side reads the variable and applies the default (the one reader of the environment); else
        the default."""
        if given is not None or self.env:
            return given
        if isinstance(self.default, str) and self.type is not str:
            return self.type(self.default)  # as argparse does: a default written as text is converted
        return self.default


def add_options(parser: argparse.ArgumentParser, options: Iterable[Option]) -> None:
    options = tuple(options)
    for option in options:
        option.add_to(parser)
    parser.set_defaults(_options=options)


def resolve_options(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the declared flags of the chosen command that no variable sets with their defaults, in place."""
    for option in getattr(args, "_options", ()):
        setattr(args, option.dest, option.resolve(getattr(args, option.dest)))
    return args
