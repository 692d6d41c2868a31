"""Duties: named side tasks watched together; the first failure is re-raised and the rest stop in a set order."""

from __future__ import annotations

import asyncio

import pytest
from tocsin_client.triggerer._duties import Duties, DutyCrashedError, LostLeaseError


async def forever() -> None:
    await asyncio.Event().wait()


async def test__stop__watch_returns_and_every_duty_still_runs() -> None:
    duties, stop = Duties(), asyncio.Event()
    duties.start("a", forever())
    asyncio.get_running_loop().call_later(0.05, stop.set)
    await duties.watch(stop)
    assert duties.names("") == ["a"]
    await duties.cancel_all()
    assert duties.names("") == []


async def test__a_crash__is_raised_naming_the_duty_while_the_others_keep_running() -> None:
    duties, stop = Duties(), asyncio.Event()

    async def broken() -> None:
        await asyncio.sleep(0.01)
        raise KeyError("a bug")

    duties.start("fine", forever())
    duties.start("broken", broken())
    with pytest.raises(DutyCrashedError, match="the broken duty crashed") as caught:
        await duties.watch(stop)
    [(name, error)] = caught.value.crashes
    assert name == "broken"
    assert isinstance(error, KeyError)
    assert duties.names("") == ["fine", "broken"]
    await duties.cancel_all()


async def test__a_duty_that_returns_while_running__is_a_crash_but_not_while_stopping() -> None:
    duties, stop = Duties(), asyncio.Event()

    async def quits() -> None:
        await asyncio.sleep(0)

    duties.start("quitter", quits())
    with pytest.raises(DutyCrashedError, match="it returned while the triggerer was running"):
        await duties.watch(stop)
    await duties.cancel("quitter")
    stop.set()
    duties.start("quitter", quits())
    await duties.watch(stop)  # asked to stop: a duty that ends is no bug


async def test__lost_lease__is_re_raised_as_itself_unless_a_stop_was_asked_for_too() -> None:
    duties, stop = Duties(), asyncio.Event()

    async def fenced() -> None:
        raise LostLeaseError

    duties.start("heartbeat", fenced())
    with pytest.raises(LostLeaseError):
        await duties.watch(stop)
    await duties.cancel("heartbeat")
    stop.set()
    duties.start("heartbeat", fenced())
    await asyncio.sleep(0)
    await duties.watch(stop)


async def test__cancel__stops_duties_one_by_one_in_the_order_given() -> None:
    duties, order = Duties(), []

    async def record(name: str) -> None:
        try:
            await forever()
        finally:
            order.append(name)

    for name in ("heartbeat", "claim cycle", "log shipping"):
        duties.start(name, record(name))
    await asyncio.sleep(0)
    await duties.cancel("claim cycle", "log shipping", "unknown", "heartbeat")
    assert order == ["claim cycle", "log shipping", "heartbeat"]


async def test__an_error_while_stopping__is_logged_not_lost(caplog: pytest.LogCaptureFixture) -> None:
    duties = Duties()

    async def fails_on_cancel() -> None:
        try:
            await forever()
        finally:
            raise ZeroDivisionError("on the way out")

    duties.start("log shipping", fails_on_cancel())
    await asyncio.sleep(0)
    await duties.cancel("log shipping")
    assert "the log shipping duty failed while stopping" in caplog.text
    assert "on the way out" in caplog.text


async def test__a_running_duty__cannot_be_started_twice() -> None:
    duties = Duties()
    duties.start("a", forever())
    with pytest.raises(RuntimeError, match="running already"):
        duties.start("a", forever())
    await duties.cancel_all()
