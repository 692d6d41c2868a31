"""The supervisor against a fake server, with real runner processes: the loop rules and the resilience rules."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from tocsin_client import serde
from tocsin_client.triggerer import EXIT_CRASHED, EXIT_FENCED, EXIT_OK
from tocsin_client.triggerer._claims import Claims
from tocsin_client.triggerer._lease import Lease

from tests.triggerer.conftest import Running, eventually
from tests.triggerer.fake_server import FakeJob, FakeServer, answer_for, problem, refuse_connections

P = "tests.triggerer.sample_triggers"
Start = Callable[..., Running]


async def test__run__registers_hostname_pid_capacity_and_heartbeats(fake: FakeServer, start: Start) -> None:
    running = start(capacity=77)
    await eventually(lambda: fake.jobs and fake.jobs[1].heartbeats >= 3, what="three heartbeats")
    job = fake.jobs[1]
    assert (job.hostname, job.pid, job.capacity) == ("test-host", os.getpid(), 77)
    running.triggerer.shutdown()
    assert await running.exit_code() == EXIT_OK
    assert fake.completed == [1]


async def test__fired_time_trigger__event_is_delivered_once_with_an_event_id(fake: FakeServer, start: Start) -> None:
    trigger_id = fake.add_time_trigger(0.3)
    start()
    await eventually(lambda: fake.events_for(trigger_id), what="the event")
    [body] = fake.events_for(trigger_id)
    assert body["event_id"]
    assert serde.deserialize(body["payload"]) is not None
    # cleanup removes the fired trigger; the triggerer never starts it again
    await eventually(lambda: trigger_id not in fake.triggers, what="cleanup")
    await eventually(lambda: fake.calls("/execution/triggers/load") > 10)
    assert len(fake.events_for(trigger_id)) == 1


async def test__cycles__use_the_delta_form_after_the_first_load(fake: FakeServer, start: Start) -> None:
    fake.add_time_trigger(3600)
    start()
    await eventually(lambda: fake.calls("/execution/triggers/load") >= 3)
    loads = [body for _, path, body in fake.requests if path == "/execution/triggers/load"]
    assert loads[0] == {"known_version": None} or loads[0] == {}
    assert all(body and body.get("known_version") for body in loads[1:3])


async def test__new_triggers__are_fetched_and_started_and_removed_ones_cancelled(
    fake: FakeServer, start: Start, tmp_path: Path
) -> None:
    marker = tmp_path / "cleaned"
    keep = fake.add_time_trigger(3600)
    drop = fake.add_trigger(f"{P}.Cleanup", {"marker": str(marker)})
    running = start()
    await eventually(lambda: running.triggerer.running == 2, what="two running")
    workload_bodies = [body for _, path, body in fake.requests if path == "/execution/triggers/workloads"]
    assert workload_bodies[0] is not None
    assert sorted(workload_bodies[0]["trigger_ids"]) == [keep, drop]
    late = fake.add_time_trigger(3600)
    await eventually(lambda: running.triggerer.running == 3, what="the late trigger started")
    assert late in running.triggerer.held
    del fake.triggers[drop]  # gone from the server (e.g. cleaned up after a timeout)
    await eventually(marker.exists, what="the removed trigger cancelled and cleaned up")
    await eventually(lambda: running.triggerer.running == 2)


async def test__bad_triggers__are_reported_as_failures_and_the_rest_keep_running(
    fake: FakeServer, start: Start
) -> None:
    good = fake.add_time_trigger(3600)
    bad = {
        fake.add_trigger("nowhere.Trigger", {}): "cannot import",
        fake.add_trigger("tocsin_client.triggers.TimeDeltaTrigger", {"nope": 1}): "cannot build",
        fake.add_trigger(f"{P}.Raising", {}): "ValueError: boom",
        fake.add_trigger(f"{P}.Garbage", {}): "cannot be sent",
        fake.add_trigger(f"{P}.Silent", {}): "without yielding",
    }
    running = start()
    await eventually(lambda: len(fake.failures) == len(bad), what="every failure reported")
    for trigger_id, body in fake.failures:
        assert bad[trigger_id] in body["error"]
    assert running.triggerer.stats.trigger_failures == len(bad)
    assert good in running.triggerer.held
    await eventually(lambda: running.triggerer.running == 1)


async def test__transient_errors__are_retried_until_delivered_once(fake: FakeServer, start: Start) -> None:
    fake.faults.append(answer_for(r"/execution/triggers/\d+/event", lambda: problem(503, "Unavailable"), times=3))
    fake.faults.append(answer_for(r"/execution/triggers/\d+/event", lambda: problem(429, "Too Many"), times=1))
    trigger_id = fake.add_trigger(f"{P}.FireNow", {})
    running = start()
    await eventually(lambda: fake.events_for(trigger_id), what="delivery after four transient answers")
    assert running.triggerer.stats.delivery_retries == 4
    assert len(fake.events_for(trigger_id)) == 1


async def test__server_down_then_back__every_event_delivered_once_and_nothing_torn_down(
    fake: FakeServer, start: Start
) -> None:
    waiting = fake.add_time_trigger(3600)
    running = start()
    await eventually(lambda: running.triggerer.running == 1)

    def events_down(request: httpx.Request) -> httpx.Response | None:
        return refuse_connections(request) if request.url.path.endswith("/event") else None

    fake.faults.append(events_down)
    fired = [fake.add_trigger(f"{P}.FireNow", {"value": n}) for n in range(20)]
    await eventually(lambda: running.triggerer.stats.delivery_retries >= 20, what="every event failing")
    fake.faults.append(refuse_connections)  # now the whole server is down
    heartbeats = fake.jobs[1].heartbeats
    await asyncio.sleep(1.5)
    assert fake.jobs[1].heartbeats == heartbeats
    assert running.triggerer.queue_depth == 20
    assert running.triggerer.running == 1  # the waiting trigger was never torn down
    fake.faults.clear()
    await eventually(lambda: all(fake.events_for(t) for t in fired), what="every event delivered after the outage")
    assert all(len(fake.events_for(t)) == 1 for t in fired)
    assert waiting in running.triggerer.held
    await eventually(lambda: running.triggerer.queue_depth == 0)


async def test__conflict_on_event__cancels_that_trigger_only(fake: FakeServer, start: Start, tmp_path: Path) -> None:
    def steal(request: httpx.Request) -> httpx.Response | None:
        return problem(409, "Conflict", "held by job 9") if request.url.path.endswith("/event") else None

    fake.faults.append(steal)
    other = fake.add_time_trigger(3600)
    trigger_id = fake.add_trigger(f"{P}.FireNow", {})
    running = start()
    await eventually(lambda: running.triggerer.stats.conflicts == 1)
    await eventually(lambda: running.triggerer.running == 1)
    assert running.triggerer.queue_depth == 0
    assert other in running.triggerer.held
    assert fake.events_for(trigger_id) == []


async def test__non_transient_4xx__is_logged_with_the_problem_and_counted(
    fake: FakeServer, start: Start, caplog: Any
) -> None:
    fake.faults.append(
        answer_for(r"/execution/triggers/\d+/failure", lambda: problem(400, "Bad Request", "no such thing"))
    )
    fake.add_trigger(f"{P}.Raising", {})
    running = start()
    await eventually(lambda: running.triggerer.stats.delivery_rejected == 1)
    assert running.triggerer.stats.delivery_retries == 0
    errors = [r for r in caplog.records if r.levelname == "ERROR" and "submitTriggerFailure was refused" in r.message]
    assert errors and "no such thing" in errors[0].getMessage()


async def test__event_the_server_cannot_store__becomes_a_failure(fake: FakeServer, start: Start) -> None:
    fake.faults.append(answer_for(r"/execution/triggers/\d+/event", lambda: problem(413, "Too Large", "over 1 MiB")))
    trigger_id = fake.add_trigger(f"{P}.FireNow", {})
    start()
    await eventually(lambda: fake.failures, what="the poison event turned into a failure")
    assert fake.failures[0][0] == trigger_id
    assert "could not be stored" in fake.failures[0][1]["error"]


async def test__conflict_on_heartbeat_with_exit_on_lost_lease__stops_every_trigger_and_exits_3(
    fake: FakeServer, start: Start, tmp_path: Path
) -> None:
    marker = tmp_path / "cleaned"
    fake.add_trigger(f"{P}.Cleanup", {"marker": str(marker)})
    running = start(exit_on_lost_lease=True)
    await eventually(lambda: running.triggerer.running == 1)
    fake.jobs[1].state = "failed"  # the server declared the job dead
    assert await running.exit_code() == EXIT_FENCED
    assert marker.read_text() == "cleaned"
    assert fake.completed == []
    assert list(fake.jobs) == [1]


async def test__lost_lease__registers_a_new_job_and_carries_on(fake: FakeServer, start: Start, tmp_path: Path) -> None:
    marker = tmp_path / "cleaned"
    waiting = fake.add_trigger(f"{P}.Cleanup", {"marker": str(marker)})
    running = start()
    await eventually(lambda: running.triggerer.running == 1)
    fake.jobs[1].state = "failed"  # the server declared the job dead and released its triggers
    await eventually(lambda: 2 in fake.jobs and fake.held_by(2) == {waiting}, what="a new job holding the trigger")
    assert running.triggerer.job is not None and running.triggerer.job.job_id == 2
    later = fake.add_trigger(f"{P}.FireNow", {})
    await eventually(lambda: fake.events_for(later), what="the new job's trigger fired and was delivered")
    assert not marker.exists()  # the trigger it held again never stopped
    assert running.triggerer.running >= 1
    assert not running.task.done()
    assert running.triggerer.stats.leases_lost == 1
    registrations = [body for _, path, body in fake.requests if path == "/execution/jobs"]
    assert len(registrations) == 2


async def test__lost_lease__triggers_the_new_job_does_not_hold_are_cancelled(
    fake: FakeServer, start: Start, tmp_path: Path
) -> None:
    marker = tmp_path / "cleaned"
    fake.add_trigger(f"{P}.Cleanup", {"marker": str(marker)})
    running = start()
    await eventually(lambda: running.triggerer.running == 1)
    fake.jobs[1].state = "failed"
    fake.jobs[99] = FakeJob(99, "other-host", 1, 10)  # another triggerer takes the released trigger first
    for trigger in fake.triggers.values():
        trigger.holder = 99
    await eventually(lambda: 2 in fake.jobs, what="a new job")
    await eventually(marker.exists, what="the trigger it no longer holds cancelled (its cleanup ran)")
    assert not running.task.done()


async def test__lost_lease__an_event_queued_under_the_old_job__still_resumes_its_task(
    fake: FakeServer, start: Start
) -> None:
    down = [True]

    def outage(request: httpx.Request) -> httpx.Response | None:
        return problem(503, "Unavailable") if down[0] and request.url.path.endswith("/event") else None

    fake.faults.append(outage)
    fired = fake.add_trigger(f"{P}.FireNow", {})
    running = start()
    await eventually(lambda: running.triggerer.stats.delivery_retries >= 1, what="the event waits in the queue")
    fake.jobs[1].state = "failed"  # reaped: like the real server, its triggers are released at once
    for trigger in fake.triggers.values():
        trigger.holder = None
    down[0] = False
    await eventually(lambda: fake.events_for(fired), what="the event delivered after all")
    assert 2 in fake.jobs
    assert not running.task.done()


@pytest.mark.parametrize(
    ("duty", "owner", "method"),
    [
        ("heartbeat", Lease, "beat"),
        ("claim cycle", Claims, "cycle"),
    ],
)
async def test__crashed_duty__exits_non_zero_naming_it(
    fake: FakeServer,
    start: Start,
    duty: str,
    owner: type[Any],
    method: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: Any,
) -> None:
    calls = 0
    original = getattr(owner, method)

    async def crash_on_third_call(self: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyError("a bug")
        return await original(self)

    monkeypatch.setattr(owner, method, crash_on_third_call)
    fired = fake.add_trigger(f"{P}.FireNow", {})
    running = start()
    assert await running.exit_code() == EXIT_CRASHED
    assert f"the {duty} duty crashed: 'a bug'" in caplog.text
    assert fake.completed == [1]  # it still stopped gracefully: delivered what it had, completed the job
    assert fake.events_for(fired)


async def test__crashed_log_shipping__exits_non_zero_naming_it(
    fake: FakeServer, start: Start, caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    from tocsin_client.triggerer._logship import LogShipper

    async def broken_flush(self: LogShipper) -> bool:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(LogShipper, "flush", broken_flush)
    running = start()
    assert await running.exit_code() == EXIT_CRASHED
    assert "the log shipping duty crashed: a bug" in caplog.text


async def test__crashed_delivery__exits_non_zero_naming_the_worker(
    fake: FakeServer, start: Start, caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    from tocsin_client.triggerer._outbox import Outbox

    async def broken_bulk(self: Outbox, items: Any) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(Outbox, "_deliver_bulk", broken_bulk)
    fake.add_trigger(f"{P}.FireNow", {})
    running = start()
    assert await running.exit_code() == EXIT_CRASHED
    assert re.search(r"the event delivery \d+ duty crashed: 'a bug'", caplog.text)
    assert fake.completed == [1]


async def test__graceful_stop__delivers_queued_events_then_completes_the_job(fake: FakeServer, start: Start) -> None:
    fake.faults.append(answer_for(r"/execution/triggers/\d+/event", lambda: problem(503, "Unavailable"), times=5))
    fired = [fake.add_trigger(f"{P}.FireNow", {"value": n}) for n in range(5)]
    running = start()
    await eventually(lambda: running.triggerer.stats.delivery_retries >= 1)
    running.triggerer.shutdown()
    assert await running.exit_code() == EXIT_OK
    assert all(len(fake.events_for(t)) == 1 for t in fired)
    assert fake.completed == [1]
    method_paths = [path for _, path, _ in fake.requests]
    assert method_paths[-1] == "/execution/jobs/1/complete"


async def test__blocking_trigger__does_not_stop_heartbeats_and_is_named(
    fake: FakeServer, start: Start, capfd: Any
) -> None:
    blocker = fake.add_trigger(f"{P}.Blocking", {"seconds": 1.5, "delay": 1.5})  # ticks see it running first
    running = start(runners=2)
    await eventually(lambda: running.triggerer.running == 1)
    before = fake.jobs[1].heartbeats
    await eventually(lambda: fake.events_for(blocker), what="the blocker's event")
    assert fake.jobs[1].heartbeats >= before + 3  # heartbeats every 0.2 s went on during the 1.5 s block
    assert running.triggerer.pool.blocked_total >= 1
    err = capfd.readouterr().err
    assert f"trigger {blocker} has blocked the event loop" in err
    assert "sample_triggers.py" in err


async def test__stalled_runner__stops_heartbeats_until_it_progresses(fake: FakeServer, start: Start) -> None:
    fake.add_trigger(f"{P}.Blocking", {"seconds": 2.0, "delay": 0.3})
    running = start(runner_health_threshold_s=0.8)
    await eventually(lambda: not running.triggerer.stats.healthy, what="unhealthy while blocked")
    stalled_at = fake.jobs[1].heartbeats
    await eventually(lambda: running.triggerer.stats.healthy, what="healthy again")
    assert fake.jobs[1].heartbeats <= stalled_at + 1
    await eventually(lambda: fake.jobs[1].heartbeats > stalled_at + 1, what="heartbeats resume")


async def test__runner_crash__restarts_it_and_runs_its_triggers_again(
    fake: FakeServer, start: Start, tmp_path: Path
) -> None:
    crasher = fake.add_trigger(f"{P}.Exit", {"marker": str(tmp_path / "exited")})
    running = start()
    await eventually(lambda: fake.events_for(crasher), timeout_s=20, what="the event after the restart")
    assert (tmp_path / "exited").exists()
    assert running.triggerer.running <= 1


async def test__metrics__are_served_on_the_given_port(fake: FakeServer, start: Start) -> None:
    from harness.live_server import free_port

    port = free_port()
    fake.add_time_trigger(3600)
    running = start(metrics_port=port, metrics_host="127.0.0.1")
    await eventually(lambda: running.triggerer.running == 1)
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    for name in (
        "tocsin_triggerer_running_triggers 1.0",
        "tocsin_triggerer_held_triggers 1.0",
        'tocsin_triggerer_queue_depth{queue="events_and_failures"} 0.0',
        "tocsin_triggerer_events_sent_total",
        "tocsin_triggerer_trigger_failures_total",
        'tocsin_triggerer_loop_lag_seconds{runner="0"}',
        "tocsin_triggerer_heartbeat_age_seconds",
        "tocsin_triggerer_healthy 1.0",
    ):
        assert name in text, name


async def test__many_simultaneous_fires__go_out_in_few_requests(fake: FakeServer, start: Start) -> None:
    moment = datetime.now(UTC) + timedelta(seconds=1.0)
    ids = [fake.add_trigger("tocsin_client.triggers.DateTimeTrigger", {"moment": moment}) for _ in range(300)]
    running = start()
    await eventually(lambda: running.triggerer.running == 300)
    await eventually(lambda: all(fake.events_for(t) for t in ids), what="all 300 events")
    assert fake.calls(r"/execution/triggers/\d+/event") == 0  # they went in bulk
    assert fake.bulk_calls <= 20
    latencies = running.triggerer.stats.fire_to_sent_s
    assert len(latencies) == 300
    assert max(latencies) < 1.0


async def test__trigger_log_lines__are_shipped_with_trigger_and_task_instance(fake: FakeServer, start: Start) -> None:
    trigger_id = fake.add_trigger(f"{P}.Logging", {})
    start()
    await eventually(lambda: any(line["event"] == "hello from trigger" for line in fake.log_lines), what="shipped")
    [line] = [line for line in fake.log_lines if line["event"] == "hello from trigger"]
    assert line["trigger_id"] == trigger_id
    assert line["level"] == "info"
    assert line["task_instance_id"] and line["try_number"] == 1
    assert line["extra"] == {"logger": "tests.triggerer.sample_triggers"}


async def test__workloads_failing_transiently__the_triggers_start_on_a_later_cycle(
    fake: FakeServer, start: Start
) -> None:
    fake.faults.append(answer_for("/execution/triggers/workloads", lambda: problem(503, "Unavailable"), times=3))
    fake.add_time_trigger(3600)
    running = start()
    await eventually(lambda: running.triggerer.running == 1, what="started after three failed fetches")
    assert fake.calls("/execution/triggers/workloads") == 1
    assert running.triggerer.stats.api_errors["getTriggerWorkloads"] == 3


async def test__trigger_removed_while_its_workload_is_on_the_way__is_cancelled_not_left_running(
    fake: FakeServer, start: Start, tmp_path: Path
) -> None:
    """The next cycle's load goes out while the workloads are fetched; its answer (the trigger is gone) must
    land after the dispatch, or the trigger would start after its removal was applied and run on, unheld."""
    marker = tmp_path / "cleaned"
    doomed = fake.add_trigger(f"{P}.Cleanup", {"marker": str(marker)})
    load_after_fetch = asyncio.Event()
    overlapped: list[bool] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/execution/triggers/load" and fake.calls(path) and not overlapped:
            await asyncio.sleep(0.2)  # the workloads call goes out first, as over a real network it may
        answer = fake.handle(request)
        if path == "/execution/triggers/workloads" and not overlapped:
            del fake.triggers[doomed]  # gone on the server right after its workload was read
            with contextlib.suppress(TimeoutError):  # then the assertion below names what went wrong
                await asyncio.wait_for(load_after_fetch.wait(), 5.0)
            overlapped.append(load_after_fetch.is_set())
        elif path == "/execution/triggers/load" and fake.calls("/execution/triggers/workloads"):
            load_after_fetch.set()
        return answer

    fake.transport = lambda: httpx.MockTransport(handle)  # type: ignore[method-assign]
    running = start()
    await eventually(lambda: overlapped, what="the workloads answered")
    assert overlapped == [True], "the next load was not sent while the workloads were on the way"
    await eventually(marker.exists, what="the removed trigger cancelled and cleaned up")
    await eventually(lambda: running.triggerer.running == 0, what="nothing left running")
    assert doomed not in running.triggerer.held
