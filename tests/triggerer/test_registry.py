"""Registry: the one set of books of held and running triggers that the claim cycle and the runner pool share."""

from __future__ import annotations

from tocsin_client.generated.models import RunTrigger
from tocsin_client.triggerer._registry import Registry


def workload(trigger_id: int) -> RunTrigger:
    return RunTrigger(trigger_id=trigger_id, classpath="x.Y", kwargs={}, timeout_at=None, task_instance=None, token="t")


def test__full_load__pending_is_what_is_held_and_not_dispatched_and_the_rest_is_removed() -> None:
    books = Registry(runners=2)
    books.place(1, 0)
    books.place(2, 1)
    books.park(workload(3))
    removed = books.load_full([2, 3, 4, 5])
    assert removed == {1}  # running here, not held any more: to cancel
    assert books.pending() == [4, 5]
    assert books.held == {2, 3, 4, 5}
    assert books.held_count == 4


def test__delta_load__adds_pending_only_for_what_does_not_run_and_returns_removed_dispatched() -> None:
    books = Registry(runners=1)
    books.load_full([1])
    books.place(1, 0)
    books.fetched([1])
    books.place(7, 0)  # still running from an earlier lease: not to fetch again
    removed = books.load_delta(added=[2, 7], removed=[1, 9])
    assert removed == {1}
    assert books.pending() == [2]
    assert books.held == {2, 7}


def test__placement__goes_to_the_lightest_runner_and_a_lost_runner_gives_back_all_but_the_quarantined() -> None:
    books = Registry(runners=2)
    for trigger_id in (1, 2, 3):
        books.place(trigger_id, books.lightest())
    assert books.on_runner(0) == {1, 3}
    assert books.on_runner(1) == {2}
    books.quarantine(3)
    books.stop(1)
    assert books.runner_lost(0) == {1}
    assert books.on_runner(0) == frozenset()
    assert books.runner_of(1) is None
    assert books.stopped() == frozenset()  # nothing placed there any more
    assert 3 in books  # quarantined: never placeable again while held
    assert not books.placeable(3)
    assert books.placeable(1)


def test__stop_then_lease_end__the_stopped_come_back_to_be_cancelled_and_nothing_is_held() -> None:
    books = Registry(runners=1)
    books.load_full([1, 2])
    books.place(1, 0)
    assert books.stop(1) == 0
    assert books.stop(99) is None  # not placed: nothing to stop
    assert 1 in books  # stopped but still placed: a load listing it does not start it again
    assert books.lease_ended() == {1}
    assert books.held == frozenset()
    assert not books.has_pending


def test__forget__drops_every_trace_and_says_where_the_placed_ones_ran() -> None:
    books = Registry(runners=2)
    books.place(1, 0)
    books.place(2, 1)
    books.park(workload(3))
    books.quarantine(4)
    books.stop(2)
    assert books.forget([1, 2, 3, 4, 5]) == {0: [1], 1: [2]}
    assert books.dispatched() == set()
    assert books.stopped() == frozenset()
    assert books.quarantined == frozenset()


def test__parked_suspects__leave_the_park_when_their_group_is_released() -> None:
    books = Registry(runners=1)
    books.park(workload(5))
    books.park(workload(6))
    assert books.has_parked
    assert [w.trigger_id for w in books.unpark([6, 8])] == [6]
    assert books.dispatched() == {5}


def test__start_again__only_what_is_still_held() -> None:
    books = Registry(runners=1)
    books.load_full([1])
    books.fetched([1])
    assert not books.start_again([2])
    assert books.start_again([1, 2])
    assert books.pending() == [1]
