"""Fixtures for triggerer tests: a fake server and a supervisor running against it with real runner processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from tocsin_client.triggerer import Triggerer, TriggererConfig

from tests.triggerer.e2e_support import start_server, start_triggerer, tasks_for  # noqa: F401 - fixtures
from tests.triggerer.fake_server import TRIGGERER_TOKEN, FakeServer


async def eventually(predicate: Callable[[], Any], timeout_s: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` until true; fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout_s} s: {what or predicate}")
        await asyncio.sleep(0.02)


@dataclass
class Running:
    triggerer: Triggerer
    task: asyncio.Task[int]

    async def exit_code(self, timeout_s: float = 20.0) -> int:
        async with asyncio.timeout(timeout_s):
            return await self.task


def config(**overrides: Any) -> TriggererConfig:
    values: dict[str, Any] = {
        "api_url": "http://fake.test",
        "token": TRIGGERER_TOKEN,
        "capacity": 1000,
        "cycle_interval_s": 0.05,
        "cleanup_interval_s": 0.2,
        "grace_period_s": 5.0,
        "retry_base_s": 0.05,
        "retry_max_s": 0.3,
        "runner_health_threshold_s": 30.0,
        "hostname": "test-host",
    }
    values.update(overrides)
    return TriggererConfig(**values).validate()


@pytest.fixture
def fake() -> FakeServer:
    return FakeServer()


@pytest.fixture
async def start(fake: FakeServer) -> AsyncIterator[Callable[..., Running]]:
    started: list[Running] = []

    def launch(**overrides: Any) -> Running:
        triggerer = Triggerer(config(**overrides), transport=fake.transport())
        task = asyncio.create_task(triggerer.run(handle_signals=False))
        running = Running(triggerer, task)
        started.append(running)
        return running

    yield launch
    for running in started:
        if not running.task.done():
            running.triggerer.shutdown()
            try:
                async with asyncio.timeout(20):
                    await running.task
            except TimeoutError:
                running.triggerer.pool.kill()
                running.task.cancel()
