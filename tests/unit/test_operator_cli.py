"""The operator commands' pieces that need no server: the follow loop's cursor, the table, the flags' value sets,
and the query-string rules the version middleware applies."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from litestar.exceptions import ValidationException
from tocsin_cli.values import JOB_STATES, TRIGGER_STATES
from tocsin_client.generated.models import JobStateName, StoredTriggerLogLine, TriggerState
from tocsin_client.operator import PAGE, age, follow_logs, table
from tocsin_server.web.query_rules import refuse_unknown_query, without_query_parameters


def test__the_flags_value_sets__are_the_contracts_enums() -> None:
    assert tuple(s.value for s in TriggerState) == TRIGGER_STATES
    assert tuple(s.value for s in JobStateName) == JOB_STATES


def _line(line_id: int) -> StoredTriggerLogLine:
    return StoredTriggerLogLine(
        id=line_id,
        trigger_id=1,
        job_id=1,
        try_number=1,
        timestamp=datetime(2026, 12, 1, tzinfo=UTC),
        level="info",
        event=f"line {line_id}",
        extra=None,
        truncated=False,
    )


class Store:
    """Lines arriving between polls, served like the API: ids above the cursor, oldest first, a page at most."""

    def __init__(self, arrivals: list[list[int]]) -> None:
        self.stored: list[int] = []
        self.arrivals = arrivals
        self.cursors: list[int] = []

    def fetch(self, after: int) -> list[StoredTriggerLogLine]:
        self.cursors.append(after)
        return [_line(i) for i in self.stored if i > after][:PAGE]

    def sleep(self, _: float) -> None:
        if not self.arrivals:
            raise KeyboardInterrupt  # the operator's Ctrl-C, once everything arrived
        self.stored.extend(self.arrivals.pop(0))


def test__follow__yields_every_line_once_in_order_across_polls_and_full_pages() -> None:
    store = Store([[1, 2], [], [3], list(range(4, 4 + PAGE + 5)), [PAGE + 9]])
    seen: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        for line in follow_logs(store.fetch, follow=True, interval_s=0.1, sleep=store.sleep):
            seen.append(line.id)
    assert seen == list(range(1, PAGE + 10))
    assert store.cursors[:4] == [0, 0, 2, 2]


def test__without_follow__it_reads_every_page_then_stops() -> None:
    store = Store([])
    store.stored = list(range(1, 2 * PAGE + 2))
    seen = [line.id for line in follow_logs(store.fetch, follow=False, interval_s=0.1, sleep=store.sleep)]
    assert seen == store.stored
    assert store.cursors == [0, PAGE, 2 * PAGE]


@pytest.mark.parametrize(("seconds", "shown"), [(0, "0s"), (59.9, "59s"), (60, "1m"), (7199, "1h"), (86400 * 3, "3d")])
def test__age(seconds: float, shown: str) -> None:
    assert age(seconds) == shown


def test__table__pads_columns_but_not_the_last() -> None:
    assert table(("ID", "NAME"), [["1", "a"], ["22", "bb"]]) == "ID  NAME\n1   a\n22  bb\n"
    assert table(("ID",), []) == "ID\n"


def test__hidden_query_parameters__leave_every_other_pair_byte_for_byte() -> None:
    raw = b"state=stuck&limit=5&job%5Fid=3&q=a+b%20c&flag&state=x"
    assert without_query_parameters(raw, {"state", "job_id"}) == b"limit=5&q=a+b%20c&flag"
    assert without_query_parameters(b"", {"state"}) == b""


def test__unknown_query_parameters__are_named_once_each_decoded() -> None:
    with pytest.raises(ValidationException) as caught:
        refuse_unknown_query(b"limit=1&b%61d=1&bad=2&other", frozenset({"limit"}))
    assert [e["key"] for e in caught.value.extra] == ["bad", "other"]  # type: ignore[union-attr]
    refuse_unknown_query(b"limit=1&offset=2", frozenset({"limit", "offset"}))
