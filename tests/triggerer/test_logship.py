"""LogShipper: a bounded buffer that keeps the newest lines, counts drops and tells the server about them."""

from __future__ import annotations

import msgspec
from tocsin_client import PayloadTooLargeError, ServerError
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


def test__batches__stay_under_the_body_budget_and_a_long_line_goes_alone() -> None:
    from tocsin_client.triggerer._logship import BATCH_BYTES, LINE_OVERHEAD

    async def send(lines: list[LogLine], dropped: int) -> None:
        pass

    shipper = LogShipper(send, Stats())
    shipper.add([line(1), LogLine(1, None, None, 2.0, "INFO", "test", "x" * 800_000), line(3)])
    batches = [shipper._take() for _ in range(3)]
    assert [[item.created for item in batch] for batch in batches] == [[1.0], [2.0], [3.0]]
    shipper.add([line(n) for n in range(1000)])
    assert len(shipper._take()) == 1000
    shipper.add([LogLine(1, None, None, float(n), "INFO", "test", "y" * 100_000) for n in range(20)])
    assert len(shipper._take()) == BATCH_BYTES // (100_000 + 2 + len("test") + LINE_OVERHEAD)


async def test__413__splits_the_batch_and_halves_a_lone_line_so_its_neighbours_still_arrive() -> None:
    shipped: list[str] = []

    async def send(lines: list[LogLine], dropped: int) -> None:
        if sum(len(item.message) for item in lines) > 10_000:  # a server whose body limit is small
            raise PayloadTooLargeError(413, Problem(type="about:blank", title="Too Large", status=413))
        shipped.extend(item.message for item in lines)

    stats = Stats()
    shipper = LogShipper(send, stats)
    shipper.add([line(1), LogLine(1, None, None, 2.0, "INFO", "test", "z" * 30_000), line(3)])
    assert await shipper.flush()
    assert shipped[0] == "line 1"
    assert shipped[-1] == "line 3"
    [cut] = shipped[1:-1]
    assert cut.startswith("z" * 3000)
    assert "cut by the triggerer to fit the server's body limit" in cut
    assert stats.log_lines_shipped == 3
    assert stats.log_lines_dropped == 0


def test__fit_line__keeps_lines_whole_up_to_what_one_request_carries() -> None:
    from tocsin_client.triggerer._reporter import MAX_LINE_CHARS, MAX_LINE_JSON_BYTES, fit_line

    assert fit_line("a" * 500_000) == "a" * 500_000
    assert fit_line("é" * 400_000) == "é" * 400_000
    for text in ("a" * 1_500_000, "é" * 800_000, "\x01" * 400_000):
        cut = fit_line(text)
        assert len(cut) <= MAX_LINE_CHARS
        assert len(msgspec.json.encode(cut)) <= MAX_LINE_JSON_BYTES
        assert cut.startswith(text[:1000])
        assert cut.endswith("more than one request carries]")


def test__huge_lines__are_bounded_by_text_size_too_keeping_the_newest() -> None:
    stats = Stats()

    async def send(lines: list[LogLine], dropped: int) -> None:
        pass

    shipper = LogShipper(send, stats, max_chars=2_500_000)
    shipper.add([LogLine(1, None, None, float(n), "INFO", "test", "x" * 1_000_000) for n in range(5)])
    assert [item.created for item in shipper._lines] == [3.0, 4.0]
    assert stats.log_lines_dropped == 3
