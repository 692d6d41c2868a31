"""The watch's reconnection backoff: doubling, capped, half of it jittered, and a server's Retry-After honoured."""

from __future__ import annotations

import pytest
from tocsin_client import Backoff


def test__delays_double_from_initial_up_to_the_cap__each_between_half_and_all_of_its_step() -> None:
    backoff = Backoff(initial_s=0.1, max_s=2.0)
    for attempt, step in [(0, 0.1), (1, 0.2), (2, 0.4), (4, 1.6), (5, 2.0), (40, 2.0), (10_000, 2.0)]:
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(step / 2 <= delay <= step for delay in delays), (attempt, min(delays), max(delays))
        assert max(delays) - min(delays) > step / 10  # jittered: watchers dropped together spread out


@pytest.mark.parametrize(("retry_after", "at_least"), [(1.0, 1.0), (30.0, 2.0), (None, 0.05), (0.0, 0.05)])
def test__retry_after__is_waited_at_least__up_to_the_cap(retry_after: float | None, at_least: float) -> None:
    backoff = Backoff(initial_s=0.1, max_s=2.0)
    delays = [backoff.delay(0, retry_after) for _ in range(100)]
    assert min(delays) >= at_least
    assert max(delays) <= max(at_least, 0.1)
