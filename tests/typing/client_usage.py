"""How the SDK is called, checked by ``mypy --strict`` (tests/typing/test_mypy.py), never run.

msgspec's technique: right calls must type-check, and each wrong call carries ``# type: ignore[<code>]``
with the error it must raise. ``warn_unused_ignores`` (part of ``strict``) turns an ignore that is no longer
needed into an error, so a generated signature that stops rejecting a wrong call fails the check.
"""

from __future__ import annotations

from datetime import timedelta
from typing import assert_type
from uuid import UUID

from tocsin_client import AsyncClient, AsyncWatch, Backoff, Client, HistoryExpiredError, Watch, deferral
from tocsin_client.generated import models
from tocsin_client.generated.models import TaskInstanceStateName
from tocsin_client.triggers import TimeDeltaTrigger


def sync_calls(client: Client, ti_id: UUID) -> None:
    # Required query parameters are required; optional ones may be left out.
    states = client.get_task_instance_states(dag_id="etl", run_id="manual_1")
    assert_type(states, models.TaskInstanceStates)
    client.get_task_instance_states(dag_id="etl", run_id="manual_1", task_ids=["wait"])
    client.get_task_instance_states(run_id="manual_1")  # type: ignore[call-arg]
    client.get_task_instance_states()  # type: ignore[call-arg]
    client.get_task_instance_states(dag_id=None, run_id="manual_1")  # type: ignore[arg-type]
    client.get_task_instance_states("etl", "manual_1")  # type: ignore[call-arg]

    # Enums are the generated enum types, not bare strings.
    page = client.list_task_instances(state=TaskInstanceStateName.deferred, limit=10)
    assert_type(page, models.TaskInstanceList)
    assert_type(page.task_instances[0].state, TaskInstanceStateName)
    client.list_task_instances()
    client.list_task_instances(state="deferred")  # type: ignore[arg-type]
    client.list_task_instances(limit="10")  # type: ignore[arg-type]

    # The operator filters (2027-01-01): enums and integers, typed the same way.
    triggers = client.list_triggers(state=models.TriggerState.orphaned, job_id=3, classpath="x.Y")
    assert_type(triggers.triggers[0].last_error, models.TriggerError | None)
    client.list_triggers(state="orphaned")  # type: ignore[arg-type]
    client.list_jobs(state=models.JobStateName.running, alive=True)
    assert_type(client.get_task_instance_logs(ti_id, after=10).lines[0].id, int)
    client.get_task_instance_logs(ti_id, after="10")  # type: ignore[arg-type]

    # Path parameters and bodies are positional and typed.
    assert_type(client.get_task_instance(ti_id), models.TaskInstance)
    client.get_task_instance(str(ti_id))  # type: ignore[arg-type]
    client.get_xcom("etl", "manual_1", "wait", "rows", map_index=0)
    client.update_task_instance_state(ti_id, models.RunningStateUpdate())
    client.update_task_instance_state(ti_id, {"state": "running"})  # type: ignore[arg-type]
    client.put_variable("greeting", models.VariableBody(value="hello"))
    client.put_variable("greeting")  # type: ignore[call-arg]

    # Deferring on a trigger object: the body is built from trigger.serialize().
    trigger = TimeDeltaTrigger(timedelta(seconds=5))
    assert_type(client.defer_task_instance(ti_id, trigger), models.TaskInstance)
    client.defer_task_instance(ti_id, trigger, next_method="resume", next_kwargs={"n": 1}, trigger_timeout=60)
    client.defer_task_instance(ti_id, trigger, trigger_timeout=timedelta(hours=1))
    client.defer_task_instance(ti_id, "tocsin_client.triggers.TimeDeltaTrigger")  # type: ignore[arg-type]
    client.defer_task_instance(ti_id, trigger, "resume")  # type: ignore[call-arg]
    assert_type(client.defer_task_instance(ti_id, trigger, start_from_trigger=True).start_from_trigger, bool)
    client.defer_task_instance(ti_id, trigger, start_from_trigger="yes")  # type: ignore[arg-type]
    assert_type(deferral(trigger), models.DeferredStateUpdate)

    # Watching changes: an iterator of changes, or of changes and bookmarks when asked for; filters keyword-only.
    watch = client.watch_task_instances(after=41, dag_id="etl", state=TaskInstanceStateName.scheduled)
    assert_type(watch, Watch[models.TaskInstanceChange])
    for change in watch:
        assert_type(change.version, int)
        assert_type(change.state, TaskInstanceStateName)
    assert_type(watch.version, int | None)
    with client.watch_task_instances(bookmarks=True, backoff=Backoff(max_s=5), give_up_after_s=60) as items:
        for item in items:
            assert_type(item, models.TaskInstanceChange | models.ChangeBookmark)
    client.watch_task_instances(after="41")  # type: ignore[call-overload]
    client.watch_task_instances(41, "etl")  # type: ignore[call-overload]
    client.watch_task_instances(state="scheduled")  # type: ignore[call-overload]
    try:
        client.watch_task_instances(after=0)
    except HistoryExpiredError as exc:
        assert_type(exc.oldest_version, int | None)


async def async_calls(client: AsyncClient, ti_id: UUID) -> None:
    states = await client.get_task_instance_states(dag_id="etl", run_id="manual_1")
    assert_type(states, models.TaskInstanceStates)
    await client.get_task_instance_states(run_id="manual_1")  # type: ignore[call-arg]
    page = await client.list_task_instances(state=TaskInstanceStateName.scheduled)
    assert_type(page, models.TaskInstanceList)
    await client.list_task_instances(state="scheduled")  # type: ignore[arg-type]
    assert_type(await client.get_task_instance(ti_id), models.TaskInstance)
    await client.update_task_instance_state(ti_id, {"state": "running"})  # type: ignore[arg-type]
    deferred = await client.defer_task_instance(ti_id, TimeDeltaTrigger(timedelta(seconds=5)), next_method="resume")
    assert_type(deferred, models.TaskInstance)
    started = await client.defer_task_instance(ti_id, TimeDeltaTrigger(timedelta(seconds=5)), start_from_trigger=True)
    assert_type(started.start_from_trigger, bool)
    async with client.watch_task_instances(run_id="manual_1") as changes:
        async for change in changes:
            assert_type(change, models.TaskInstanceChange)
    assert_type(
        client.watch_task_instances(bookmarks=True), AsyncWatch[models.TaskInstanceChange | models.ChangeBookmark]
    )
