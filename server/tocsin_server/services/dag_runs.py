"""Dag runs: created by the admin surface, their state read by triggers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from msgspec import UNSET
from sqlalchemy import func, select

from tocsin_server.db import models as m
from tocsin_server.db.reads import GET_DAG_RUN_STATE, Reads
from tocsin_server.errors import NotFoundError
from tocsin_server.generated.models import DagRun, DagRunBody, DagRunList, DagRunState, DagRunStateName
from tocsin_server.services._db import insert_or_conflict
from tocsin_server.services._time import utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


def _to_model(row: m.DagRun) -> DagRun:
    return DagRun(dag_id=row.dag_id, run_id=row.run_id, state=DagRunStateName(row.state), created_at=row.created_at)


async def get_dag_run_state(reads: Reads, dag_id: str, run_id: str) -> DagRunState:
    row = await reads.fetch_one(GET_DAG_RUN_STATE, {"dag_id": dag_id, "run_id": run_id})
    if row is None:
        msg = f"dag run {dag_id}/{run_id} does not exist"
        raise NotFoundError(msg, field="run_id")
    return DagRunState(state=DagRunStateName(row[0]))


async def create_dag_run(session: AsyncSession, body: DagRunBody) -> DagRun:
    conflict = f"dag run {body.dag_id}/{body.run_id} already exists"
    state = DagRunStateName.running if body.state is UNSET else body.state
    row = m.DagRun(dag_id=body.dag_id, run_id=body.run_id, state=state.value, created_at=utcnow())
    values = {"dag_id": row.dag_id, "run_id": row.run_id, "state": row.state, "created_at": row.created_at}
    row.id = await insert_or_conflict(session, m.DagRun, values, conflict, field="run_id")
    return _to_model(row)


async def list_dag_runs(session: AsyncSession, *, dag_id: str | None, limit: int, offset: int) -> DagRunList:
    query = select(m.DagRun)
    if dag_id is not None:
        query = query.where(m.DagRun.dag_id == dag_id)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(query.order_by(m.DagRun.id.desc()).limit(limit).offset(offset))
    return DagRunList(dag_runs=[_to_model(r) for r in rows], total=total or 0)
