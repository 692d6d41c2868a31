"""Task instances: runtime state changes and state reads, and the admin surface."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Router, get, patch, post
from litestar.datastructures import State
from litestar.params import JSONBody, PathParameter, QueryParameter

from tocsin_server.api._common import (
    ADMIN,
    AUTHED,
    RUNTIME_READ,
    RUNTIME_WRITE,
    WITH_BODY,
    DagIdFilter,
    DagIdQuery,
    DbSession,
    Limit,
    Offset,
    RunIdFilter,
    RunIdQuery,
    problems,
    strict_query,
)
from tocsin_server.generated.models import (
    TaskInstance,
    TaskInstanceBody,
    TaskInstanceList,
    TaskInstanceStateName,
    TaskInstanceStates,
    TaskInstanceStateUpdate,
)
from tocsin_server.services import task_instances
from tocsin_server.web.raw_body import json_body

TaskInstanceId = Annotated[UUID, PathParameter()]


@get(
    "/execution/task-instances/states",
    operation_id="getTaskInstanceStates",
    tags=["runtime"],
    opt=RUNTIME_READ,
    responses=problems(*AUTHED),
)
async def get_task_instance_states(
    state: State,
    dag_id: DagIdQuery,
    run_id: RunIdQuery,
    task_ids: Annotated[list[str] | None, QueryParameter(max_items=1000)] = None,
) -> TaskInstanceStates:
    return await task_instances.get_task_states(state.reads, dag_id, run_id, task_ids)


@patch(
    "/execution/task-instances/{task_instance_id:uuid}/state",
    operation_id="updateTaskInstanceState",
    tags=["runtime"],
    opt=RUNTIME_WRITE,
    dto=json_body(TaskInstanceStateUpdate),
    return_dto=None,
    responses=problems(*WITH_BODY, 404, 409),
)
async def update_task_instance_state(
    state: State, db_session: DbSession, task_instance_id: TaskInstanceId, data: JSONBody[TaskInstanceStateUpdate]
) -> TaskInstance:
    return await task_instances.update_state(db_session, task_instance_id, data, cipher=state.kwargs_cipher)


@get(
    "/api/v1/task-instances",
    operation_id="listTaskInstances",
    tags=["admin"],
    opt=ADMIN,
    guards=[strict_query("state")],
    responses=problems(*AUTHED),
)
async def list_task_instances(
    db_session: DbSession,
    dag_id: DagIdFilter = None,
    run_id: RunIdFilter = None,
    ti_state: Annotated[TaskInstanceStateName | None, QueryParameter(name="state")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> TaskInstanceList:
    return await task_instances.list_task_instances(
        db_session, dag_id=dag_id, run_id=run_id, state=ti_state, limit=limit, offset=offset
    )


@post(
    "/api/v1/task-instances",
    operation_id="createTaskInstance",
    tags=["admin"],
    opt=ADMIN,
    status_code=201,
    dto=json_body(TaskInstanceBody),
    return_dto=None,
    responses=problems(*WITH_BODY, 404, 409),
)
async def create_task_instance(db_session: DbSession, data: JSONBody[TaskInstanceBody]) -> TaskInstance:
    return await task_instances.create_task_instance(db_session, data)


@get(
    "/api/v1/task-instances/{task_instance_id:uuid}",
    operation_id="getTaskInstance",
    tags=["admin"],
    opt=ADMIN,
    responses=problems(*AUTHED, 404),
)
async def get_task_instance(db_session: DbSession, task_instance_id: TaskInstanceId) -> TaskInstance:
    return await task_instances.get_task_instance(db_session, task_instance_id)


router = Router(
    "/",
    route_handlers=[
        get_task_instance_states,
        update_task_instance_state,
        list_task_instances,
        create_task_instance,
        get_task_instance,
    ],
)
