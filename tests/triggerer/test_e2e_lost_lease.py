"""End to end (real API server, real triggerer, SQLite and PostgreSQL): an API outage longer than the liveness
threshold ends the job's lease; the triggerer registers a new job and every task still resumes, no restart."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tocsin_client import serde

from harness.live_server import LiveServer
from tests.triggerer.e2e_support import Triggerer, in_seconds, poll
from tests.triggerer.proxy import Proxy

pytestmark = pytest.mark.slow
DATETIME = "tocsin_client.triggers.DateTimeTrigger"


def test__outage_longer_than_the_liveness_threshold__a_new_job_carries_on_and_every_task_resumes(
    start_server: Callable[..., LiveServer], start_triggerer: Callable[..., Triggerer], tasks_for: Any
) -> None:
    server = start_server(TOCSIN_LIVENESS_THRESHOLD_S="2")
    tasks = tasks_for(server.url)
    proxy = Proxy(int(server.url.rsplit(":", 1)[1]))
    triggerer = start_triggerer(proxy.url)
    during = in_seconds(4)  # fires while the API is unreachable: the event waits in the queue
    after = in_seconds(14)  # fires once the new job runs
    moments = {tasks.defer(DATETIME, {"moment": moment}): moment for moment in [during] * 5 + [after] * 5}
    poll(lambda: all(t.triggerer_id for t in tasks.client.list_triggers().triggers), 20, "all claimed")
    proxy.stop()
    try:
        poll(lambda: tasks.client.list_jobs().jobs[0].state.value == "failed", 20, "the job reaped", 0.2)
        poll(lambda: datetime.now(UTC) > during + timedelta(seconds=1), 10, "the first triggers fired while down")
        assert all(tasks.get(ti_id).state.value == "deferred" for ti_id in moments)
    finally:
        proxy.start()
    for ti_id, moment in moments.items():
        ti = tasks.wait_state(ti_id, "scheduled", timeout_s=30)
        assert ti.next_kwargs is not None and serde.deserialize(ti.next_kwargs["event"]) == moment
    assert triggerer.process.poll() is None, triggerer.output()[-3000:]
    states = sorted(job.state.value for job in tasks.client.list_jobs().jobs)
    assert states == ["failed", "running"]
    assert "lost its lease" in triggerer.output()
    proxy.stop()
