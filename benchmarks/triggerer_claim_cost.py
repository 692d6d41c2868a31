"""What a triggerer's ramp costs the server, split into its two calls: claiming and fetching workloads.

    .venv/bin/python benchmarks/triggerer_claim_cost.py [--db postgres|sqlite] [N ...]

For each N a fresh database is seeded as ``triggerer_density_e2e`` seeds it (N idle deferred task instances,
then ``ANALYZE``) and one job ramps to all N in-process, through the same service functions the routes call,
each call in its own transaction as a request has: ``claims.load`` with the default 1,000 claims per call and
the delta version, then ``build_run_trigger_workloads`` for what it claimed, with real task-instance tokens
and the response encoded as the route would. Per trigger: the Python CPU time of each (the server's share) and,
on PostgreSQL, the CPU time of the database backend serving it. The smallest N is the baseline of the same run:
the ratio beside each figure is flat when the cost is linear in N.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from tocsin_server.db import migrate
from tocsin_server.generated.models import JobRegistrationBody, Workloads, WorkloadTaskInstance
from tocsin_server.services import claims, jobs
from tocsin_server.services.workloads import build_run_trigger_workloads
from tocsin_server.web.tokens import TokenAuthority
from triggerer_density import cpu_s
from triggerer_density_e2e import seed
from triggerer_latency import POSTGRES_ADMIN, SECRET, _pg

CLAIMS_PER_CALL = 1000
LIVENESS_S = 86_400.0  # no heartbeats in-process: the lease must not end during the ramp
TI_TOKEN_TTL_S = 3600


async def ramp(database_url: str, n: int) -> dict[str, float]:
    engine = create_async_engine(database_url)
    authority = TokenAuthority(SECRET, issuer="tocsin", audience="tocsin")

    def mint(ti: WorkloadTaskInstance) -> str:
        return authority.issue(f"ti:{ti.id}", [f"ti:{ti.id}", f"run:{ti.dag_id}/{ti.run_id}"], TI_TOKEN_TTL_S)

    spent = {"claim_cpu": 0.0, "fetch_cpu": 0.0, "claim_db": 0.0, "fetch_db": 0.0}
    async with engine.connect() as connection:
        backend = None
        if engine.dialect.name == "postgresql":
            backend = int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())
        await connection.commit()
        # One connection, so that one backend serves every statement and its CPU time is the database's cost.
        async with AsyncSession(bind=connection) as session, session.begin():
            body = JobRegistrationBody(hostname="bench", pid=1, capacity=n)
            job_id = (await jobs.register(session, body, max_capacity=n, liveness_threshold_s=LIVENESS_S)).job_id
        version: str | None = None
        running = 0
        began = time.monotonic()
        while running < n:
            db0, cpu0 = cpu_s(backend) if backend else 0.0, time.process_time()
            async with AsyncSession(bind=connection) as session, session.begin():
                held = await claims.load(
                    session,
                    job_id,
                    version,
                    max_claims_per_call=CLAIMS_PER_CALL,
                    liveness_threshold_s=LIVENESS_S,
                )
            db1, cpu1 = cpu_s(backend) if backend else 0.0, time.process_time()
            version = held.version
            new = held.trigger_ids if held.full else held.added
            async with AsyncSession(bind=connection) as session, session.begin():
                built = await build_run_trigger_workloads(session, new, mint_token=mint, holder=job_id)
            msgspec.json.encode(Workloads(workloads=built))
            db2, cpu2 = cpu_s(backend) if backend else 0.0, time.process_time()
            spent["claim_cpu"] += cpu1 - cpu0
            spent["fetch_cpu"] += cpu2 - cpu1
            spent["claim_db"] += db1 - db0
            spent["fetch_db"] += db2 - db1
            running += len(built)
            if not new:
                msg = f"{n}: the ramp stalled at {running} running"
                raise SystemExit(msg)
        spent["wall"] = time.monotonic() - began
    await engine.dispose()
    return {key: value if key == "wall" else value / n * 1e6 for key, value in spent.items()}


async def measure(n: int, db: str, folder: Path) -> dict[str, float]:
    if db == "sqlite":
        return await ramp(f"sqlite+aiosqlite:///{folder / f'claim-cost-{n}.db'}", n)
    name = f"tocsin_claim_cost_{uuid.uuid4().hex[:8]}"
    await _pg(f'CREATE DATABASE "{name}"')
    try:
        url = f"{POSTGRES_ADMIN.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"
        await asyncio.to_thread(migrate.upgrade, url)
        await seed(url, n)
        return await ramp(url, n)
    finally:
        await _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sizes", nargs="*", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="postgres")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tocsin-claim-cost-"))
    print(f"# triggerer ramp cost by call, in-process, {args.db}, {CLAIMS_PER_CALL} claims per call")
    print("# µs per trigger; (×) is the ratio to the smallest N of this run (flat: linear in N)\n")
    print("| N | ramp wall s | claim: server CPU | claim: database CPU | fetch: server CPU | fetch: database CPU |")
    print("|---:|---:|---:|---:|---:|---:|")
    first: dict[str, float] | None = None
    for n in args.sizes:
        r = await measure(n, args.db, folder)
        first = first or r
        print(
            f"| {n:,} | {r['wall']:.1f} | {cell(r, first, 'claim_cpu')} | {cell(r, first, 'claim_db')} "
            f"| {cell(r, first, 'fetch_cpu')} | {cell(r, first, 'fetch_db')} |",
            flush=True,
        )


def cell(r: dict[str, float], first: dict[str, float], key: str) -> str:
    ratio = r[key] / first[key] if first[key] else float("nan")
    return f"{r[key]:.1f} (×{ratio:.2f})"


if __name__ == "__main__":
    asyncio.run(main())
