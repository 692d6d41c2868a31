"""How the command line reads the values of its flags."""

from __future__ import annotations

import argparse
import re
import uuid
from collections.abc import Callable
from typing import Final

SCOPES: Final = ("admin", "worker", "triggerer")
OUTPUTS: Final = ("table", "json")
TRIGGER_STATES: Final = ("unassigned", "assigned", "orphaned")
"""The contract's TriggerState values (tests/unit/test_operator_cli.py keeps them equal to the SDK's enum)."""
JOB_STATES: Final = ("running", "success", "failed")
"""The contract's JobStateName values (kept equal to the SDK's enum by the same test)."""
_TTL: Final = re.compile(r"^(?P<amount>\d+)(?P<unit>[smhd]?)$")
_UNIT_SECONDS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(raw: str) -> int:
    """Seconds, or a number with s, m, h or d."""
    match = _TTL.match(raw.strip())
    if match is None or int(match.group("amount")) == 0:
        msg = f"--ttl {raw!r}: use a positive number of seconds, or a number with s, m, h or d (e.g. 3600, 30m, 7d)"
        raise argparse.ArgumentTypeError(msg)
    return int(match.group("amount")) * _UNIT_SECONDS[match.group("unit")]


def parse_scope(raw: str) -> str:
    if raw not in SCOPES:
        msg = f"--scope {raw!r}: choose from {', '.join(SCOPES)}"
        raise argparse.ArgumentTypeError(msg)
    return raw


def parse_choice(flag: str, choices: tuple[str, ...]) -> Callable[[str], str]:
    """A flag's value from a fixed set; anything else is one line naming the flag and the set."""

    def parse(raw: str) -> str:
        if raw not in choices:
            msg = f"{flag} {raw!r}: choose from {', '.join(choices)}"
            raise argparse.ArgumentTypeError(msg)
        return raw

    return parse


def parse_uuid(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        msg = f"{raw!r} is not a task instance id (a UUID such as 0193a1de-4f6b-7c2e-9f1a-2b3c4d5e6f70)"
        raise argparse.ArgumentTypeError(msg) from None
