"""Issue 9, item 9: the deployment of docs/deploy/ survives a replica killed and PostgreSQL restarted mid-firing.

Two ``tocsin api-server`` replicas on one PostgreSQL (a private instance: the machine's shared one is never
restarted) behind haproxy (docs/deploy/haproxy.cfg, health-checked on /ready), two triggerers pointed at
haproxy; every process is started from the ExecStart line and variables of its systemd unit in docs/deploy/.
While a few hundred task instances' time triggers fire, one replica is SIGKILLed (and restarted, as
``Restart=always`` would), then PostgreSQL crashes (``pg_ctl stop -m immediate``) and comes back.

Then, from the server's own data: every task instance resumed exactly once with its own trigger's event (one
event record per trigger, none lost, none applied twice), no trigger ever went from one job to another (claims
exclusive) and each stayed with the job that fired it, each periodic duty ran at most once per interval
across the replicas (kept running through both failures, and the replica left running took them over when
the one that ran them last stopped), and neither triggerer ever exited.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import pytest
from tocsin_client import AsyncClient, serde
from tocsin_client.generated.models import DagRunBody, DeferredStateUpdate, RunningStateUpdate, TaskInstanceBody
from tocsin_server.web.tokens import TokenAuthority

from harness.haproxy import HaproxyUnavailableError, ensure_haproxy, running_haproxy
from harness.live_server import free_port
from harness.private_postgres import PrivatePostgres, private_postgres
from tests.conftest import SECRET
from tests.deploy import audit
from tests.deploy.deployment import (
    API_SERVER_UNIT,
    DOCS,
    MIGRATE_UNIT,
    TRIGGERER_UNIT,
    Service,
    Site,
    execute,
    poll,
    query,
    status_of,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TASKS = 160
LEAD_S = 1.0  # the first trigger fires this long after the deferrals are expected to be done
SPREAD_S = 10.0  # the fire moments spread over this long
INTERVALS = {"timeouts": 1.0, "cleanup": 2.0, "retention": 2.0}
TUNING = {
    "TOCSIN_TIMEOUT_CHECK_INTERVAL_S": str(INTERVALS["timeouts"]),
    "TOCSIN_CLEANUP_INTERVAL_S": str(INTERVALS["cleanup"]),
    "TOCSIN_RETENTION_INTERVAL_S": str(INTERVALS["retention"]),
    "TOCSIN_MAX_CLAIMS_PER_CALL": "20",  # both triggerers get triggers as they arrive
}
DAG, RUN = "deploy", "mid-firing"
RAN_SINCE = "SELECT 1 FROM test_audit_duty_run WHERE name = $1 AND last_run > $2"


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    with private_postgres() as instance:
        yield instance


@pytest.fixture
def haproxy_binary() -> str:
    try:
        return ensure_haproxy()
    except HaproxyUnavailableError as exc:
        pytest.skip(str(exc))


def _resumed(pg: PrivatePostgres) -> int | None:
    rows = query(pg.dsn, "SELECT count(*) FROM task_instance WHERE state = 'scheduled'")
    return None if rows is None else int(rows[0][0])


def _trigger_kwargs(n: int, at: datetime, first_fire: datetime) -> tuple[str, dict[str, Any]]:
    """Every trigger's kwargs differ, so each task instance gets a trigger of its own (and its own event)."""
    moment = first_fire + timedelta(seconds=SPREAD_S * n / TASKS, microseconds=n)
    if n % 2:  # its moment is fixed when a triggerer builds it: about `delta` after the claim
        return "tocsin_client.triggers.TimeDeltaTrigger", {"delta": max(moment - at, timedelta(microseconds=n))}
    return "tocsin_client.triggers.DateTimeTrigger", {"moment": moment}


def _running_jobs(pg: PrivatePostgres) -> int | None:
    rows = query(pg.dsn, "SELECT count(*) FROM job WHERE state = 'running'")
    return None if rows is None else int(rows[0][0])


async def _defer_all(url: str, token: str) -> dict[str, tuple[str, dict[str, Any], datetime]]:
    """Create TASKS task instances through haproxy, move them to running, then defer each on a trigger of its own
    that fires within SPREAD_S seconds of the deferrals' end; task id -> (classpath, kwargs, deferred at).

    The deferrals are a third of the calls: the time the first two thirds took says when they will be done,
    whatever the machine's load, so the fire moments start after them instead of while they are made."""
    limit = asyncio.Semaphore(16)
    deferred: dict[str, tuple[str, dict[str, Any], datetime]] = {}
    async with AsyncClient(url, token=token) as client:
        await client.create_dag_run(DagRunBody(dag_id=DAG, run_id=RUN))

        async def running(n: int) -> UUID:
            async with limit:
                ti = await client.create_task_instance(TaskInstanceBody(dag_id=DAG, run_id=RUN, task_id=f"t{n:04d}"))
                await client.update_task_instance_state(ti.id, RunningStateUpdate())
                return ti.id

        started = time.monotonic()
        ids = await asyncio.gather(*(running(n) for n in range(TASKS)))
        first_fire = datetime.now(UTC) + timedelta(seconds=(time.monotonic() - started) / 2 + LEAD_S)

        async def defer(n: int, ti_id: UUID) -> None:
            async with limit:
                at = datetime.now(UTC)
                classpath, kwargs = _trigger_kwargs(n, at, first_fire)
                body = DeferredStateUpdate(
                    classpath=classpath, trigger_kwargs=serde.serialize(kwargs), next_method="execute_complete"
                )
                await client.update_task_instance_state(ti_id, body)
                deferred[f"t{n:04d}"] = (classpath, kwargs, at)

        await asyncio.gather(*(defer(n, ti_id) for n, ti_id in enumerate(ids)))
    return deferred


class Timeline:
    """What happened when, with how many task instances had resumed: the failure messages show it."""

    def __init__(self, pg: PrivatePostgres) -> None:
        self.pg = pg
        self.start = time.monotonic()
        self.marks: list[tuple[str, float, int | None]] = []

    def mark(self, what: str, *, still_firing: bool = False) -> None:
        """Note ``what`` now; ``still_firing``: it happened mid-firing, with a tenth of the triggers yet to fire."""
        resumed = _resumed(self.pg)
        self.marks.append((what, time.monotonic() - self.start, resumed))
        if still_firing:
            assert resumed is None or resumed <= TASKS * 9 // 10, f"{what} after the firing: {self}"

    def wait_resumed(self, count: int, timeout_s: float) -> None:
        poll(lambda: (_resumed(self.pg) or 0) >= count, timeout_s, f"{count} task instances resumed: {self}")

    def __str__(self) -> str:
        return "; ".join(f"{label} at {t:.1f} s ({resumed} resumed)" for label, t, resumed in self.marks)


@pytest.mark.timeout(180)
def test__replica_killed_and_postgres_restarted_mid_firing__nothing_lost_nothing_twice(
    tmp_path: Path, haproxy_binary: str, postgres: PrivatePostgres
) -> None:
    pg = postgres
    authority = TokenAuthority(SECRET, issuer="tocsin", audience="tocsin")
    ports = {"lb": free_port(), "api1": free_port(), "api2": free_port()}
    balancer = f"127.0.0.1:{ports['lb']}"
    site = Site(
        tmp_path,
        balancer=balancer,
        files={
            "tocsin.env": {"TOCSIN_DATABASE_URL": pg.url, **TUNING},
            "jwt-secret": SECRET,
            "triggerer.env": {"TOCSIN_TOKEN": authority.issue("deploy", ["triggerer"], 3600)},
        },
    )
    migrate = site.service(MIGRATE_UNIT)
    api = [site.service(API_SERVER_UNIT, instance=str(ports[name])) for name in ("api1", "api2")]
    triggerers = [site.service(TRIGGERER_UNIT, instance=str(n)) for n in (1, 2)]
    lb_env = {"LB_BIND": balancer, "LB_SERVER_1": f"127.0.0.1:{ports['api1']}"}
    lb_env["LB_SERVER_2"] = f"127.0.0.1:{ports['api2']}"
    lb = f"http://{balancer}"

    timeline = Timeline(pg)
    with contextlib.ExitStack() as stack:
        for service in [*api, *triggerers]:  # stopped in reverse order: the triggerers first
            stack.callback(service.stop, 20)

        migrate.start()
        assert migrate.process is not None and migrate.process.wait(timeout=60) == 0, migrate.output()
        execute(pg.dsn, audit.INSTALL)
        for server in api:
            server.start()
        for server, name in zip(api, ("api1", "api2"), strict=True):
            _wait_ready(server, f"http://127.0.0.1:{ports[name]}")
        proxy = stack.enter_context(
            running_haproxy(haproxy_binary, DOCS / "haproxy.cfg", lb_env, tmp_path / "haproxy.log")
        )
        poll(lambda: status_of(f"{lb}/ready") == 200 or proxy.poll() is not None, 30, "haproxy serving /ready")
        assert proxy.poll() is None, (tmp_path / "haproxy.log").read_text()
        for triggerer in triggerers:
            triggerer.start()
        # Both hold a job before anything is deferred: one that started late (a loaded machine) would find the
        # other holding every trigger, and "both triggerers fired" would say nothing about the product.
        poll(lambda: (_running_jobs(pg) or 0) >= 2, 60, "both triggerers registered")
        timeline.mark("started")
        deferred = asyncio.run(_defer_all(lb, authority.issue("deploy-admin", ["admin", "worker"], 3600)))
        timeline.mark("deferred")

        # 1. A replica dies (SIGKILL) while triggers fire; haproxy sends everything to the other one.
        timeline.wait_resumed(TASKS * 3 // 20, 60)
        api[0].kill()
        timeline.mark("api1 killed", still_firing=True)
        poll(lambda: status_of(f"{lb}/ready") == 200, 10, "haproxy serving with one replica")

        # 2. PostgreSQL crashes and comes back while triggers keep firing.
        timeline.wait_resumed(TASKS * 2 // 5, 60)
        pg.stop("immediate")
        timeline.mark("postgres stopped", still_firing=True)
        poll(lambda: status_of(f"{lb}/ready") not in (200, None), 15, "haproxy answering that nothing is ready")
        timeline.mark("outage seen through haproxy")
        pg.start()
        api[0].start()  # Restart=always brought it back meanwhile; with the database down it would exit and retry
        timeline.mark("postgres started, api1 restarted", still_firing=True)
        poll(lambda: status_of(f"{lb}/ready") == 200, 30, "haproxy serving again after the restart")

        timeline.wait_resumed(TASKS, 60)
        timeline.mark("all resumed")
        _wait_ready(api[0], f"http://127.0.0.1:{ports['api1']}")
        # The cleanup duty deletes every trigger nothing waits on any more; each duty runs again after it all.
        poll(lambda: query(pg.dsn, "SELECT 1 FROM trigger") == [], 30, "every used trigger cleaned up")
        settled = datetime.now(UTC)
        for name in INTERVALS:
            poll(lambda n=name: query(pg.dsn, RAN_SINCE, n, settled), 30, f"the {name} duty running after it all")  # type: ignore[misc]
        timeline.mark("settled")

        for triggerer in triggerers:
            assert triggerer.alive(), f"{triggerer.name} exited: {triggerer.output()[-3000:]}"
        assert proxy.poll() is None, (tmp_path / "haproxy.log").read_text()
        for triggerer in triggerers:
            triggerer.terminate()  # both at once, as `systemctl stop tocsin-triggerer@*` does
        codes = [triggerer.wait(40) for triggerer in triggerers]
        assert codes == [0, 0], [t.output()[-3000:] for t in triggerers]
        server_pids = {pid: server.name for server in api for pid in server.pids}
        for server in api:
            assert server.alive(), f"{server.name} exited: {server.output()[-3000:]}"
        # Which replica wins the duties is a race their tick phases may settle one way for good: stop the one
        # that ran them last, and the other must take every duty over (so the duties ran on both replicas).
        last_writer = _last_duty_writer(pg, server_pids)
        first, second = (api[0], api[1]) if api[0].name == last_writer else (api[1], api[0])
        first.terminate()
        _assert_stopped_cleanly(first)
        handed_over = datetime.now(UTC)
        for name in INTERVALS:
            poll(
                lambda n=name: query(pg.dsn, RAN_SINCE, n, handed_over),  # type: ignore[misc]
                30,
                f"the {name} duty taken over by {second.name} after {first.name} stopped",
            )
        second.terminate()
        _assert_stopped_cleanly(second)
        timeline.mark("stopped")

    print(f"timeline: {timeline}")  # with -s: where the time went
    _assert_each_resumed_once(pg, deferred, timeline)
    _assert_claims_exclusive(pg)
    _assert_duties_once_per_interval(pg, server_pids, timeline)
    for service in [*api, *triggerers]:
        assert "Traceback" not in service.output(), f"{service.name}:\n{service.output()[-5000:]}"


def _assert_stopped_cleanly(server: Service) -> None:
    # uvicorn ends a graceful stop by re-raising SIGTERM; systemd counts that death as a clean exit.
    assert server.wait(20) in (0, -signal.SIGTERM), server.output()[-3000:]


def _last_duty_writer(pg: PrivatePostgres, server_pids: dict[int, str]) -> str:
    rows = query(pg.dsn, audit.DUTY_RUNS)
    assert rows, "no duty ran"
    latest = max(rows, key=lambda row: row[1])
    return server_pids[audit.writer_pid(latest[2])]


def _wait_ready(server: Service, url: str) -> None:
    poll(lambda: status_of(f"{url}/ready") == 200 or not server.alive(), 60, f"{server.name} ready")
    assert server.alive(), f"{server.name} exited: {server.output()[-3000:]}"


def _assert_each_resumed_once(
    pg: PrivatePostgres, deferred: dict[str, tuple[str, dict[str, Any], datetime]], timeline: Timeline
) -> None:
    rows = query(pg.dsn, "SELECT task_id, state, try_number, next_method, next_kwargs, trigger_id FROM task_instance")
    assert rows is not None
    assert len(rows) == TASKS == len(deferred)
    for task_id, state, try_number, next_method, next_kwargs, trigger_id in rows:
        assert (state, try_number, next_method, trigger_id) == ("scheduled", 1, "execute_complete", None), task_id
        event = serde.deserialize(msgspec.json.decode(next_kwargs)["event"])
        classpath, kwargs, deferred_at = deferred[task_id]
        if classpath.endswith("DateTimeTrigger"):
            assert event == kwargs["moment"], (task_id, event, kwargs)
        else:  # the moment was fixed when a triggerer built the trigger, at least `delta` after the deferral
            assert event >= deferred_at + kwargs["delta"], (task_id, event, deferred_at, kwargs)
    events = query(pg.dsn, "SELECT trigger_id, task_instances_resumed FROM trigger_event")
    assert events is not None
    assert len(events) == TASKS, f"{len(events)} event records for {TASKS} triggers: {timeline}"
    assert len({row[0] for row in events}) == TASKS, "a trigger's event was applied twice"
    assert all(row[1] == 1 for row in events), [tuple(row) for row in events if row[1] != 1]


def _assert_claims_exclusive(pg: PrivatePostgres) -> None:
    rows = query(pg.dsn, audit.HOLDERS)
    jobs = query(pg.dsn, "SELECT id, state FROM job ORDER BY id")
    fired_by = query(pg.dsn, "SELECT trigger_id, job_id FROM trigger_event")
    assert rows is not None and jobs is not None and fired_by is not None
    history = audit.holders_by_trigger([(row[0], row[1], row[2]) for row in rows])
    assert len(history) == TASKS
    # Two triggerers registered once each and never lost their lease (no job of a third), and ended cleanly.
    assert [state for _, state in jobs] == ["success", "success"], jobs
    for trigger_id, holders in history.items():
        assert not audit.handovers(holders), f"trigger {trigger_id} went from job to job: {holders}"
        held = {holder for holder in holders if holder is not None}
        assert len(held) == 1, f"trigger {trigger_id} was held by {held or 'nobody'}: {holders}"
        assert holders[-1] is None, f"trigger {trigger_id} is still there: {holders}"
    fired = {int(trigger_id): int(job_id) for trigger_id, job_id in fired_by}
    for trigger_id, holders in history.items():
        assert fired[trigger_id] in holders, f"trigger {trigger_id} fired by job {fired[trigger_id]}, held by {holders}"
    assert len(set(fired.values())) == 2, "both triggerers fired triggers"


def _assert_duties_once_per_interval(pg: PrivatePostgres, server_pids: dict[int, str], timeline: Timeline) -> None:
    rows = query(pg.dsn, audit.DUTY_RUNS)
    assert rows is not None
    runs = [audit.DutyRun(name, last_run, audit.writer_pid(writer)) for name, last_run, writer in rows]
    assert {run.writer_pid for run in runs} <= set(server_pids), f"runs by others: {runs}"
    assert len({run.writer_pid for run in runs}) >= 2, "the duties ran on one replica only"
    for name, interval_s in INTERVALS.items():
        mine = [run for run in runs if run.name == name]
        assert len(mine) >= 3, f"the {name} duty ran {len(mine)} times: {timeline}"
        gaps = [(after.last_run - before.last_run).total_seconds() for before, after in itertools.pairwise(mine)]
        writers = sorted({server_pids[run.writer_pid] for run in mine})
        print(f"{name}: {len(mine)} runs by {writers}, gaps {min(gaps):.2f}-{max(gaps):.2f} s")  # with -s
        for before, after in itertools.pairwise(mine):
            gap = (after.last_run - before.last_run).total_seconds()
            assert gap >= interval_s, (
                f"{name} ran twice in {gap:.3f} s (interval {interval_s} s): "
                f"{server_pids[before.writer_pid]} then {server_pids[after.writer_pid]}"
            )
