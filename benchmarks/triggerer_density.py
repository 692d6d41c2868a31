"""Triggerer density: memory per idle trigger and idle CPU, beside a bare uvloop baseline in the same run.

    .venv/bin/python benchmarks/triggerer_density.py [N ...]      (default: 10000 50000 100000)
    .venv/bin/python benchmarks/triggerer_density.py --end-to-end [--runners 2] [--db sqlite|postgres] [N ...]

For each N it starts a real runner process (the same ``RunnerPool`` the supervisor uses), measures its RSS
empty, hands it N ``DateTimeTrigger`` workloads due in 30 days (each with a task instance and a 300-byte
token, like real workloads), waits until all N run, lets it settle, then measures RSS, PSS and CPU over
``--idle`` seconds. The baseline is a bare uvloop process holding N tasks that each ``await
asyncio.sleep(30 days)``: the floor any asyncio triggerer pays. Airflow 3.3.2's recorded anchor (27 KiB per
idle trigger, stalled before 19,000) is printed beside them. Standard library + tocsin only; Linux /proc.

``--end-to-end`` (``triggerer_density_e2e``): a real ``tocsin api-server`` on a fresh database seeded with N
deferred task instances, and a real ``tocsin triggerer`` claiming them all.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

from tocsin_client import serde
from tocsin_client.generated.models import RunTrigger, WorkloadTaskInstance
from tocsin_client.triggerer import TriggererConfig
from tocsin_client.triggerer._pool import RunnerPool
from tocsin_client.triggerer._registry import Registry

AIRFLOW_KIB_PER_TRIGGER = 27
TICK = os.sysconf("SC_CLK_TCK")
BARE = """
import asyncio, sys, uvloop
async def main(n):
    tasks = [asyncio.ensure_future(asyncio.sleep(30 * 86400)) for _ in range(n)]
    print("ready", flush=True)
    await asyncio.sleep(3600)
uvloop.run(main(int(sys.argv[1])))
"""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


async def idle_cpu_pct(pid: int, seconds: float) -> float:
    before = cpu_s(pid)
    await asyncio.sleep(seconds)
    return 100 * (cpu_s(pid) - before) / seconds


def workloads(n: int) -> list[RunTrigger]:
    moment = serde.serialize({"moment": datetime.now(UTC) + timedelta(days=30)})
    token = "t" * 300
    return [
        RunTrigger(
            trigger_id=i + 1,
            classpath="tocsin_client.triggers.DateTimeTrigger",
            kwargs=moment,
            timeout_at=None,
            task_instance=WorkloadTaskInstance(
                id=uuid4(),
                dag_id="bench",
                run_id="run",
                task_id=f"task_{i}",
                map_index=-1,
                try_number=1,
                next_method="execute_complete",
            ),
            token=token,
        )
        for i in range(n)
    ]


async def measure_runner(n: int, settle_s: float, idle_s: float) -> dict[str, float]:
    config = TriggererConfig(api_url="http://127.0.0.1:9", token="unused", runners=1)
    pool = RunnerPool(config, Registry(1), lambda report: None, lambda lost: None)
    await pool.start()
    runner = pool._runners[0]
    assert runner.process is not None
    pid = runner.process.pid
    await asyncio.sleep(2.0)
    empty_rss, empty_pss = rss_kib(pid), pss_kib(pid)
    started = time.monotonic()
    batch = workloads(n)
    pool.assign(batch)
    del batch
    while runner.running < n:  # noqa: ASYNC110 - the runner's own tick reports the count
        await asyncio.sleep(0.1)
    load_s = time.monotonic() - started
    await asyncio.sleep(settle_s)
    result = {
        "empty_rss_mib": empty_rss / 1024,
        "rss_mib": rss_kib(pid) / 1024,
        "pss_mib": pss_kib(pid) / 1024,
        "kib_per_trigger": (rss_kib(pid) - empty_rss) / n,
        "pss_kib_per_trigger": (pss_kib(pid) - empty_pss) / n,
        "fds": fds(pid),
        "cpu_pct": await idle_cpu_pct(pid, idle_s),
        "load_s": load_s,
        "lag_ms": pool.peak_lag_s() * 1000,
    }
    await pool.stop(5.0)
    return result


async def measure_bare(n: int, settle_s: float, idle_s: float) -> dict[str, float]:
    empty = subprocess.Popen([sys.executable, "-c", BARE, "0"], stdout=subprocess.PIPE)  # noqa: ASYNC220
    full = subprocess.Popen([sys.executable, "-c", BARE, str(n)], stdout=subprocess.PIPE)  # noqa: ASYNC220
    try:
        for process in (empty, full):
            assert process.stdout is not None
            process.stdout.readline()
        await asyncio.sleep(settle_s)
        return {
            "kib_per_trigger": (rss_kib(full.pid) - rss_kib(empty.pid)) / n,
            "pss_kib_per_trigger": (pss_kib(full.pid) - pss_kib(empty.pid)) / n,
            "cpu_pct": await idle_cpu_pct(full.pid, idle_s),
            "empty_rss_mib": rss_kib(empty.pid) / 1024,
        }
    finally:
        for process in (empty, full):
            process.kill()
            process.wait()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sizes", nargs="*", type=int, default=[10_000, 50_000, 100_000])
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--end-to-end", action="store_true", help="a real triggerer claiming from a real server")
    parser.add_argument("--runners", type=int, default=2, help="with --end-to-end")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="postgres", help="with --end-to-end")
    parser.add_argument("--ramp-timeout", type=float, default=600.0, help="with --end-to-end")
    parser.add_argument("--claims-per-call", type=int, default=None, help="TOCSIN_MAX_CLAIMS_PER_CALL, e2e")
    args = parser.parse_args()
    if args.end_to_end:
        from triggerer_density_e2e import run_end_to_end

        await run_end_to_end(args)
        return
    print(f"# triggerer density — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs,")
    print(
        f"# Python {platform.python_version()}; CPU measured over {args.idle:.0f} s after {args.settle:.0f} s settle\n"
    )
    print(
        "| idle triggers N | runner RSS MiB (empty) | KiB/trigger RSS (PSS) | open fds | runner CPU % of a core "
        "| all running after | longest loop stall ms | bare uvloop KiB/task | bare CPU % | Airflow 3.3.2 KiB/trigger |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        runner = await measure_runner(n, args.settle, args.idle)
        bare = await measure_bare(n, args.settle, args.idle)
        airflow = f"{AIRFLOW_KIB_PER_TRIGGER} (recorded anchor)" if n < 19_000 else "not reached (stalled < 19,000)"
        print(
            f"| {n:,} | {runner['rss_mib']:.0f} ({runner['empty_rss_mib']:.0f}) "
            f"| {runner['kib_per_trigger']:.2f} ({runner['pss_kib_per_trigger']:.2f}) | {runner['fds']:.0f} "
            f"| {runner['cpu_pct']:.2f} | {runner['load_s']:.1f} s | {runner['lag_ms']:.1f} "
            f"| {bare['kib_per_trigger']:.2f} | {bare['cpu_pct']:.2f} | {airflow} |",
            flush=True,
        )


if __name__ == "__main__":
    asyncio.run(main())
