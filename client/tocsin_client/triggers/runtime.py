"""What a running trigger may ask the API server, with the per-task-instance token of its workload."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Final

from tocsin_client.errors import NotFoundError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from tocsin_client._client import AsyncClient
    from tocsin_client.generated.models import Connection, TaskInstanceStateItem, WorkloadTaskInstance

__all__ = ["TriggerContext"]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


_MISSING: Final = _Missing()


@dataclasses.dataclass(frozen=True, slots=True)
class TriggerContext:
    """Runtime helpers for one trigger, set on ``BaseTrigger.context`` by the runner.

    Attributes:
        client: An ``AsyncClient`` carrying the workload's task-instance token (refreshed by the server).
        task_instance: The task instance the trigger serves; None for an asset watcher's trigger.
    """

    client: AsyncClient
    task_instance: WorkloadTaskInstance | None = None

    @property
    def _ti(self) -> WorkloadTaskInstance:
        if self.task_instance is None:
            msg = "this trigger serves no task instance (an asset watcher's trigger); name the dag run explicitly"
            raise RuntimeError(msg)
        return self.task_instance

    async def get_connection(self, conn_id: str) -> Connection:
        """The connection ``conn_id``, password included."""
        return await self.client.get_connection(conn_id)

    async def get_variable(self, key: str, default: str | _Missing = _MISSING) -> str:
        """The value of variable ``key``; ``default`` when given and the variable does not exist."""
        try:
            return (await self.client.get_variable(key)).value
        except NotFoundError:
            if isinstance(default, _Missing):
                raise
            return default

    async def get_xcom(
        self, key: str, *, task_id: str | None = None, map_index: int | None = None, default: Any = _MISSING
    ) -> Any:
        """An XCom of this dag run: of ``task_id`` (this task when omitted); ``default`` when given and absent."""
        ti = self._ti
        try:
            xcom = await self.client.get_xcom(ti.dag_id, ti.run_id, task_id or ti.task_id, key, map_index=map_index)
        except NotFoundError:
            if default is _MISSING:
                raise
            return default
        return xcom.value

    async def get_task_states(
        self, task_ids: Iterable[str] | None = None, *, dag_id: str | None = None, run_id: str | None = None
    ) -> list[TaskInstanceStateItem]:
        """The task-instance states of a dag run (this one when omitted), optionally only of ``task_ids``."""
        dag_id, run_id = self._run(dag_id, run_id)
        ids = None if task_ids is None else list(task_ids)
        states = await self.client.get_task_instance_states(dag_id=dag_id, run_id=run_id, task_ids=ids)
        return states.task_states

    async def get_dag_run_state(self, *, dag_id: str | None = None, run_id: str | None = None) -> str:
        """The state of a dag run (this one when omitted)."""
        dag_id, run_id = self._run(dag_id, run_id)
        return (await self.client.get_dag_run_state(dag_id, run_id)).state.value

    def _run(self, dag_id: str | None, run_id: str | None) -> tuple[str, str]:
        if dag_id is not None and run_id is not None:
            return dag_id, run_id
        ti = self._ti
        return dag_id or ti.dag_id, run_id or ti.run_id
