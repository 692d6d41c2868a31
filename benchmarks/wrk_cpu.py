"""Run one wrk command and account for where the machine's CPU went meanwhile (Linux /proc only).

    python3 wrk_cpu.py --server-pid PID -- wrk -t1 -c16 -d10s URL
    python3 wrk_cpu.py --wait-quiet 30

The first form passes wrk's output through and adds one line, each figure in percent of one core over
the wall time of the run:

    CPU server_pct=.. wrk_pct=.. postgres_pct=.. other_pct=.. total_pct=..

``other`` is everything else on the box (total busy minus the server, wrk and every ``postgres``
process): on a shared machine it says whether a run was disturbed. The second form waits (up to N s)
until the whole machine is nearly idle, so a run does not start on top of someone else's job.
Standard library only.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
QUIET_PCT = 15.0  # busy percent of one core, summed over all CPUs, that counts as idle


def busy_ticks() -> int:
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    values = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
    return sum(values) - values[3] - values[4]


def process_ticks(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    rest = stat.rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])  # utime, stime (fields 14 and 15)


def postgres_ticks() -> int:
    total = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += process_ticks(int(entry.name))
            except OSError:
                continue
    return total


def wait_quiet(limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        before, start = busy_ticks(), time.monotonic()
        time.sleep(1.0)
        pct = 100.0 * (busy_ticks() - before) / TICK / (time.monotonic() - start)
        if pct < QUIET_PCT:
            print(f"QUIET busy_pct={pct:.0f}")
            return
        if time.monotonic() >= deadline:
            print(f"BUSY busy_pct={pct:.0f} (gave up waiting after {limit_s:.0f}s)")
            return


def run(server_pid: int | None, command: list[str]) -> int:
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0, server0, pg0, t0 = busy_ticks(), process_ticks(server_pid or 0), postgres_ticks(), time.monotonic()
    completed = subprocess.run(command, check=False, capture_output=True, text=True)
    busy1, server1, pg1, t1 = busy_ticks(), process_ticks(server_pid or 0), postgres_ticks(), time.monotonic()
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    sys.stdout.write(completed.stdout)
    sys.stderr.write(completed.stderr)
    wall = t1 - t0

    def pct(ticks: float) -> float:
        return 100.0 * ticks / TICK / wall

    wrk_s = (children_after.ru_utime + children_after.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
    # postgres backends that exit during the run take their ticks with them: never below zero
    total, server, pg = pct(busy1 - busy0), pct(server1 - server0), max(0.0, pct(pg1 - pg0))
    wrk = 100.0 * wrk_s / wall
    other = max(0.0, total - server - wrk - pg)
    server_text = f"{server:.0f}" if server_pid else "-"
    print(
        f"CPU server_pct={server_text} wrk_pct={wrk:.0f} postgres_pct={pg:.0f} other_pct={other:.0f} total_pct={total:.0f}"
    )
    return completed.returncode


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server-pid", type=int)
    parser.add_argument("--wait-quiet", type=float, metavar="SECONDS")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.wait_quiet is not None:
        wait_quiet(args.wait_quiet)
        return 0
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the wrk command after --")
    return run(args.server_pid, command)


if __name__ == "__main__":
    sys.exit(main())
