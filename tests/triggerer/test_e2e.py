"""End to end: a real API server process, real triggerer processes, SQLite and PostgreSQL.

Nothing sleeps and hopes: every wait polls with a deadline. Reliability tests stop, freeze and kill real
processes.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from tocsin_client import serde

from harness.live_server import LiveServer, free_port
from tests.triggerer.e2e_support import P, Triggerer, in_seconds, poll
from tests.triggerer.proxy import Proxy

pytestmark = pytest.mark.slow


def test__defer_fire_resume__the_event_lands_in_next_kwargs(
    start_server: Callable[..., LiveServer], start_triggerer: Callable[..., Triggerer], tasks_for: Any
) -> None:
    server = start_server()
    tasks = tasks_for(server.url)
    moment = in_seconds(1.5)
    ti_id = tasks.defer("tocsin_client.triggers.DateTimeTrigger", {"moment": moment})
    start_triggerer(server.url)
    ti = tasks.wait_state(ti_id, "scheduled")
    assert ti.next_method == "execute_complete"
    assert ti.next_kwargs is not None
    assert serde.deserialize(ti.next_kwargs["event"]) == moment
    assert ti.trigger_id is None


def test__terminal_event__ends_the_task(
    start_server: Callable[..., LiveServer], start_triggerer: Callable[..., Triggerer], tasks_for: Any
) -> None:
    server = start_server()
    tasks = tasks_for(server.url)
    ti_id = tasks.defer(f"{P}.Terminal", {})
    start_triggerer(server.url)
    tasks.wait_state(ti_id, "success")


def test__failures_and_timeouts__arrive_as_fail(
    start_server: Callable[..., LiveServer],
    start_triggerer: Callable[..., Triggerer],
    tasks_for: Any,
    tmp_path: Path,
) -> None:
    server = start_server()
    tasks = tasks_for(server.url)
    raising = tasks.defer(f"{P}.Raising", {})
    unimportable = tasks.defer("nowhere.Trigger", {})
    marker = tmp_path / "cleaned"
    timing_out = tasks.defer(f"{P}.Cleanup", {"marker": str(marker)}, timeout_s=2.0)
    fine = tasks.defer("tocsin_client.triggers.DateTimeTrigger", {"moment": in_seconds(3600)})
    triggerer = start_triggerer(server.url)

    ti = tasks.wait_state(raising, "scheduled")
    assert ti.next_method == "__fail__"
    assert ti.next_kwargs is not None and ti.next_kwargs["error"] == "ValueError: boom"
    assert any("sample_triggers.py" in line for line in ti.next_kwargs["traceback"])
    ti = tasks.wait_state(unimportable, "scheduled")
    assert ti.next_method == "__fail__"
    assert ti.next_kwargs is not None and "cannot import trigger class nowhere.Trigger" in ti.next_kwargs["error"]
    ti = tasks.wait_state(timing_out, "scheduled")
    assert ti.next_method == "__fail__"
    assert ti.next_kwargs is not None and "trigger timeout" in ti.next_kwargs["error"]
    # the timed-out deferral's trigger is cleaned up by the server and cancelled in the triggerer
    poll(marker.exists, 15, "the cleaned-up trigger cancelled in the triggerer (its cleanup ran)")
    assert tasks.get(fine).state.value == "deferred"
    assert triggerer.process.poll() is None


def test__sigterm__completes_the_job_and_hands_the_triggers_back(
    start_server: Callable[..., LiveServer], start_triggerer: Callable[..., Triggerer], tasks_for: Any
) -> None:
    server = start_server()
    tasks = tasks_for(server.url)
    tasks.defer("tocsin_client.triggers.DateTimeTrigger", {"moment": in_seconds(3600)})
    triggerer = start_triggerer(server.url)
    poll(lambda: tasks.client.list_triggers().triggers[0].triggerer_id is not None, 20, "the trigger claimed")
    triggerer.process.send_signal(signal.SIGTERM)
    assert triggerer.wait(20) == 0
    [job] = tasks.client.list_jobs().jobs
    assert job.state.value == "success"
    assert tasks.client.list_triggers().triggers[0].triggerer_id is None
    assert "completed" in triggerer.output()


def test__api_server_down_for_10_s__every_event_delivered_once(
    start_server: Callable[..., LiveServer], start_triggerer: Callable[..., Triggerer], tasks_for: Any
) -> None:
    server = start_server()
    tasks = tasks_for(server.url)
    proxy = Proxy(int(server.url.rsplit(":", 1)[1]))
    metrics_port = free_port()
    triggerer = start_triggerer(proxy.url, "--metrics-port", str(metrics_port))
    fire_at = in_seconds(4)
    ids = [tasks.defer("tocsin_client.triggers.DateTimeTrigger", {"moment": fire_at}) for _ in range(20)]
    poll(lambda: all(t.triggerer_id for t in tasks.client.list_triggers().triggers), 20, "all claimed")
    proxy.stop()
    down_at = time.monotonic()
    poll(lambda: datetime.now(UTC) > fire_at + timedelta(seconds=1), 10, "the triggers fired while down")
    assert all(tasks.get(ti_id).state.value == "deferred" for ti_id in ids)
    time.sleep(max(0.0, 10 - (time.monotonic() - down_at)))  # the outage itself: 10 s, then back
    proxy.start()
    for ti_id in ids:
        ti = tasks.wait_state(ti_id, "scheduled", timeout_s=30)
        assert ti.next_kwargs is not None and serde.deserialize(ti.next_kwargs["event"]) == fire_at
    metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    assert "tocsin_triggerer_events_sent_total 20.0" in metrics
    assert triggerer.process.poll() is None
    proxy.stop()


def test__sigkilled_triggerer__its_triggers_fire_elsewhere_once(
    start_server: Callable[..., LiveServer], start_triggerer: Callable[..., Triggerer], tasks_for: Any
) -> None:
    server = start_server(TOCSIN_LIVENESS_THRESHOLD_S="3")
    tasks = tasks_for(server.url)
    fire_at = in_seconds(6)
    ids = [tasks.defer("tocsin_client.triggers.DateTimeTrigger", {"moment": fire_at}) for _ in range(10)]
    first = start_triggerer(server.url)
    poll(lambda: all(t.triggerer_id for t in tasks.client.list_triggers().triggers), 20, "all claimed by the first")
    first.process.kill()
    first.process.wait()
    start_triggerer(server.url)
    for ti_id in ids:
        ti = tasks.wait_state(ti_id, "scheduled", timeout_s=30)
        assert ti.next_kwargs is not None and serde.deserialize(ti.next_kwargs["event"]) == fire_at
    holders = {t.triggerer_id for t in tasks.client.list_triggers().triggers}
    assert 1 not in holders


def test__frozen_triggerer_declared_dead__with_exit_on_lost_lease__exits_3_on_its_next_heartbeat(
    start_server: Callable[..., LiveServer], start_triggerer: Callable[..., Triggerer], tasks_for: Any
) -> None:
    server = start_server(TOCSIN_LIVENESS_THRESHOLD_S="2")
    tasks = tasks_for(server.url)
    tasks.defer("tocsin_client.triggers.DateTimeTrigger", {"moment": in_seconds(3600)})
    triggerer = start_triggerer(server.url, TOCSIN_TRIGGERER_EXIT_ON_LOST_LEASE="1")
    poll(lambda: tasks.client.list_triggers().triggers[0].triggerer_id is not None, 20, "claimed")
    os.kill(triggerer.process.pid, signal.SIGSTOP)
    try:
        poll(lambda: tasks.client.list_jobs().jobs[0].state.value != "running", 20, "the job reaped", 0.2)
    finally:
        os.kill(triggerer.process.pid, signal.SIGCONT)
    assert triggerer.wait(20) == 3
    assert "heartbeat refused" in triggerer.output() or "load refused" in triggerer.output()


def test__trigger_log_lines__are_readable_through_the_admin_api_after_the_triggerer_is_gone(
    start_server: Callable[..., LiveServer], start_triggerer: Callable[..., Triggerer], tasks_for: Any
) -> None:
    server = start_server()
    tasks = tasks_for(server.url)
    ti_id = tasks.defer(f"{P}.Logging", {})
    triggerer = start_triggerer(server.url)
    tasks.wait_state(ti_id, "scheduled")
    triggerer.process.send_signal(signal.SIGTERM)
    assert triggerer.wait(20) == 0
    lines = tasks.client.get_task_instance_logs(ti_id).lines
    [line] = [line for line in lines if line.event == "hello from trigger"]
    assert line.level == "info"
    assert line.try_number == 1
    assert line.job_id == tasks.client.list_jobs().jobs[0].id


def test__second_sigterm__exits_at_once_without_waiting_for_the_grace_period(
    start_server: Callable[..., LiveServer], start_triggerer: Callable[..., Triggerer], tasks_for: Any
) -> None:
    server = start_server()
    tasks = tasks_for(server.url)
    proxy = Proxy(int(server.url.rsplit(":", 1)[1]))
    fire_at = in_seconds(2.5)
    tasks.defer("tocsin_client.triggers.DateTimeTrigger", {"moment": fire_at})
    triggerer = start_triggerer(proxy.url, "--grace-period", "60")
    poll(lambda: tasks.client.list_triggers().triggers[0].triggerer_id is not None, 20, "claimed")
    proxy.stop()  # the event will wait in the queue: a graceful stop would wait up to 60 s to deliver it
    poll(lambda: datetime.now(UTC) > fire_at + timedelta(seconds=0.5), 10, "fired")
    triggerer.process.send_signal(signal.SIGTERM)
    poll(lambda: "SIGTERM: stopping" in triggerer.output(), 10, "the graceful stop began")
    started = time.monotonic()
    triggerer.process.send_signal(signal.SIGTERM)
    assert triggerer.wait(5) == 130
    assert time.monotonic() - started < 5
    assert "SIGTERM again: exiting now" in triggerer.output()


def test__trigger_sleeping_past_its_token_lifetime__still_reads_through_the_api(
    start_server: Callable[..., LiveServer], start_triggerer: Callable[..., Triggerer], tasks_for: Any
) -> None:
    from tocsin_client.generated.models import VariableBody

    server = start_server(TOCSIN_TI_TOKEN_TTL_S="1")  # expired 1 s + the server's 5 s leeway later
    tasks = tasks_for(server.url)
    tasks.client.put_variable("greeting", VariableBody(value="hello"))
    ti_id = tasks.defer(f"{P}.ReadsVariableLater", {"key": "greeting", "delay": 8.0})
    triggerer = start_triggerer(server.url)
    ti = tasks.wait_state(ti_id, "scheduled")
    assert ti.next_method == "execute_complete", ti.next_kwargs
    assert ti.next_kwargs is not None and ti.next_kwargs["event"] == "hello"
    assert "its task-instance token expired; renewed" in triggerer.output()


def test__asset_watcher_trigger__every_event_becomes_an_asset_event(
    start_server: Callable[..., LiveServer], start_triggerer: Callable[..., Triggerer], tasks_for: Any
) -> None:
    from tocsin_client.generated.models import AssetWatcherBody

    server = start_server()
    tasks = tasks_for(server.url)
    body = AssetWatcherBody(asset_name="s3://bucket/data", classpath=f"{P}.Watcher", trigger_kwargs={"count": 3})
    watcher = tasks.client.create_asset_watcher(body)
    start_triggerer(server.url)
    events = poll(
        lambda: len(found := tasks.client.list_asset_events(watcher.id).asset_events) == 3 and found,
        20,
        "three asset events",
    )
    assert sorted(event.payload for event in events) == [0, 1, 2]
    assert len({event.event_id for event in events}) == 3


def test__a_trigger_made_after_the_newest_one_was_cleaned_up__has_a_new_id_and_fires(
    start_server: Callable[..., LiveServer], start_triggerer: Callable[..., Triggerer], tasks_for: Any
) -> None:
    """SQLite gave a new row the id of the newest row deleted: the second trigger got the first one's id, and the
    triggerer, still holding the first, took it for the trigger it had already run (the README's engine loop,
    right after the curl examples' trigger fired and was cleaned up, then waited for ever)."""
    server = start_server()
    tasks = tasks_for(server.url)
    start_triggerer(server.url)
    first = tasks.defer("tocsin_client.triggers.DateTimeTrigger", {"moment": in_seconds(0.5)})
    first_trigger = tasks.get(first).trigger_id
    assert first_trigger is not None
    tasks.wait_state(first, "scheduled")
    poll(lambda: tasks.client.list_triggers().total == 0, 15, "the fired trigger cleaned up")
    second = tasks.defer("tocsin_client.triggers.DateTimeTrigger", {"moment": in_seconds(0.5)})
    second_trigger = tasks.get(second).trigger_id
    assert second_trigger is not None and second_trigger > first_trigger
    ti = tasks.wait_state(second, "scheduled")
    assert ti.next_kwargs is not None and ti.next_method == "execute_complete"
