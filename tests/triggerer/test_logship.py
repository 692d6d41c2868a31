"""LogShipper: a bounded buffer that keeps the newest lines, counts drops and tells the server about them."""

from __future__ import annotations

from tocsin_client import ServerError
from tocsin_client.generated.models import Problem
from tocsin_client.triggerer._frames import LogLine
from tocsin_client.triggerer._logship import LogShipper
from tocsin_client.triggerer._stats import Stats


def line(n: int) -> LogLine:
    return LogLine(1, None, None, float(n), "INFO", "test", f"line {n}")


async def test__full_buffer__keeps_the_newest_and_counts_the_dropped() -> None:
    shipped: list[tuple[list[str], int]] = []

    async def send(lines: list[LogLine], dropped: int) -> None:
        shipped.append(([item.message for item in lines], dropped))

    stats = Stats()
    shipper = LogShipper(send, stats, capacity=3)
    shipper.add([line(n) for n in range(5)], dropped_upstream=2)
    assert stats.log_lines_dropped == 4
    assert await shipper.flush()
    assert shipped == [(["line 2", "line 3", "line 4"], 4)]
    assert stats.log_lines_shipped == 3


async def test__server_down__lines_stay_and_go_out_later() -> None:
    down = True
    shipped: list[str] = []

    async def send(lines: list[LogLine], dropped: int) -> None:
        if down:
            raise ServerError(503, Problem(type="about:blank", title="Unavailable", status=503))
        shipped.extend(item.message for item in lines)

    stats = Stats()
    shipper = LogShipper(send, stats, capacity=10)
    shipper.add([line(1), line(2)])
    assert not await shipper.flush()
    assert len(shipper) == 2
    shipper.add([line(3)])
    down = False
    assert await shipper.flush()
    assert shipped == ["line 1", "line 2", "line 3"]
    assert stats.log_lines_dropped == 0


async def test__without_a_logs_endpoint__nothing_is_buffered() -> None:
    stats = Stats()
    shipper = LogShipper(None, stats)
    shipper.add([line(1)], dropped_upstream=1)
    assert len(shipper) == 0
    assert not shipper.enabled
    assert stats.log_lines_dropped == 1
