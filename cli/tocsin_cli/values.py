"""How the command line reads the values of its flags."""

from __future__ import annotations

import argparse
import re
from typing import Final

SCOPES: Final = ("admin", "worker", "triggerer")
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
