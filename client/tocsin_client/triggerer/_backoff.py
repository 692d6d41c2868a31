"""Jittered exponential backoff: many triggerers retrying after one outage must not retry in step."""

from __future__ import annotations

import random

__all__ = ["backoff_delay"]


def backoff_delay(attempt: int, *, base_s: float, max_s: float) -> float:
    """The delay before retry ``attempt`` (1, 2, ...): ``base * 2**(attempt-1)`` capped, then jittered to 50-100 %."""
    ceiling: float = min(max_s, base_s * float(2 ** min(attempt - 1, 30)))
    return ceiling * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not cryptography
