"""Turn runtime_get.sh's results TSV into the markdown table and the verdict against DESIGN.md section 7.

    python3 benchmarks/bench_table.py RESULTS.tsv

Rows are grouped by (target, concurrency); with several rounds the table shows the median and, for req/s,
the min-max range. Ratios compare each tocsin row with the hello-world and the Airflow row of the same
concurrency: the Airflow row measured in this run when there is one, otherwise the recorded anchor.
Standard library only.
"""

from __future__ import annotations

import csv
import statistics
import sys
from collections import defaultdict
from pathlib import Path

# shared/bench/README.md, "Anchor: Airflow 3.3.2 Execution API", airflow-all-postgres / variable, median of 3.
AIRFLOW_ANCHOR_RPS = {16: 232.0, 64: 170.0}
AIRFLOW_ANCHOR_NOTE = "recorded anchor, not this run (shared/bench/README.md, Airflow 3.3.2, 2026-11-28)"
TARGET_RATIO = 10.0  # DESIGN.md section 7: >= 10x Airflow's Execution API
MOONSHOT_RATIO = 25.0
TARGET_P99_MS = 10.0  # ... with p99 <= 10 ms at 16 connections
TARGET_P99_CONC = 16
QUIET_OTHERS_PCT = 25.0  # a run counts as undisturbed when others used at most this much of a core


def _fmt_int(value: float) -> str:
    return f"{value:,.0f}"


def _fmt_ms(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _cpu(rows: list[dict[str, str]], field: str) -> str:
    values = [float(r[field]) for r in rows if r.get(field) not in (None, "", "-")]
    return f"{max(0.0, statistics.median(values)):.0f}" if values else "–"


def _us_per_request(rows: list[dict[str, str]]) -> str:
    """Server CPU time per request: less sensitive to other load on the box than req/s."""
    values = [
        float(r["server_cpu"]) * 1e4 / float(r["rps"])
        for r in rows
        if r.get("server_cpu") not in (None, "", "-") and float(r["rps"]) > 0
    ]
    return f"{statistics.median(values):.0f}" if values else "–"


def _quiet(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The runs that others' jobs on the box did not disturb (needs the other_cpu column)."""
    return [r for r in rows if r.get("other_cpu") not in (None, "", "-") and float(r["other_cpu"]) <= QUIET_OTHERS_PCT]


def load(path: Path) -> dict[tuple[str, int], list[dict[str, str]]]:
    groups: dict[tuple[str, int], list[dict[str, str]]] = defaultdict(list)
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            groups[(row["target"], int(row["conc"]))].append(row)
    return groups


def median(rows: list[dict[str, str]], field: str) -> float:
    return statistics.median(float(r[field]) for r in rows)


def render(path: Path) -> str:
    groups = load(path)
    order = {"hello": 0, "tocsin": 1, "airflow": 2}
    keys = sorted(groups, key=lambda k: (order.get(k[0].split("-")[0], 9), k[0], k[1]))
    rps = {k: median(rows, "rps") for k, rows in groups.items()}
    rounds = max((len(rows) for rows in groups.values()), default=0)
    airflow_measured = {c: v for (t, c), v in rps.items() if t.startswith("airflow")}

    lines = [
        "| target | conc | req/s | p50 ms | p99 ms | p99 ms, quiet runs | non-2xx | RSS MiB | server CPU % | server CPU µs/req "
        "| PG CPU % | others' CPU % | tocsin / hello-world | tocsin / Airflow |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    anchor_used = False
    verdicts: list[str] = []
    for key in keys:
        target, conc = key
        rows = groups[key]
        req = _fmt_int(rps[key])
        if len(rows) > 1:
            low, high = min(float(r["rps"]) for r in rows), max(float(r["rps"]) for r in rows)
            req += f" ({_fmt_int(low)}–{_fmt_int(high)})"
        non2xx = sum(int(r["non2xx"]) for r in rows)
        sock = sum(int(r["sock_err"]) for r in rows)
        bad = str(non2xx) + (f" (+{sock} socket errors)" if sock else "")
        rss = rows[-1]["rss_mib"]
        vs_hello = vs_airflow = "–"
        if target.startswith("tocsin"):
            hello = rps.get(("hello-litestar", conc))
            if hello:
                vs_hello = f"{rps[key] / hello:.2f}×"
            if conc in airflow_measured:
                ratio = rps[key] / airflow_measured[conc]
                vs_airflow = f"{ratio:.1f}×"
            elif conc in AIRFLOW_ANCHOR_RPS:
                ratio = rps[key] / AIRFLOW_ANCHOR_RPS[conc]
                vs_airflow = f"{ratio:.1f}× †"
                anchor_used = True
            else:
                ratio = None
            if conc == TARGET_P99_CONC:
                p99 = median(rows, "p99_ms")
                quiet = _quiet(rows)
                quiet_p99 = median(quiet, "p99_ms") if quiet else None
                throughput = (
                    "n/a (no Airflow figure)"
                    if ratio is None
                    else f"{ratio:.1f}× Airflow: {'MET' if ratio >= TARGET_RATIO else 'NOT MET'} "
                    f"(target ≥ {TARGET_RATIO:.0f}×, moonshot {MOONSHOT_RATIO:.0f}×: "
                    f"{'met' if ratio >= MOONSHOT_RATIO else 'not met'})"
                )
                latency = f"p99 {_fmt_ms(p99)} ms: {'MET' if p99 <= TARGET_P99_MS else 'NOT MET'} (target ≤ {TARGET_P99_MS:.0f} ms)"
                if quiet_p99 is not None and len(quiet) < len(rows):
                    latency += (
                        f"; in the {len(quiet)} undisturbed run(s) p99 {_fmt_ms(quiet_p99)} ms: "
                        f"{'MET' if quiet_p99 <= TARGET_P99_MS else 'NOT MET'}"
                    )
                verdicts.append(f"- {target} at {conc} connections: {throughput}; {latency}")
        server_cpu = _cpu(rows, "server_cpu")
        us_per_req = _us_per_request(rows)
        quiet = _quiet(rows)
        quiet_p99 = f"{_fmt_ms(median(quiet, 'p99_ms'))} ({len(quiet)}/{len(rows)})" if quiet else "–"
        lines.append(
            f"| {target} | {conc} | {req} | {_fmt_ms(median(rows, 'p50_ms'))} | {_fmt_ms(median(rows, 'p99_ms'))} "
            f"| {quiet_p99} | {bad} | {rss} | {server_cpu} | {us_per_req} | {_cpu(rows, 'pg_cpu')} | {_cpu(rows, 'other_cpu')} "
            f"| {vs_hello} | {vs_airflow} |"
        )
    notes = [
        "CPU columns: percent of one core during the measured run (wrk_cpu.py): the server process, every "
        "postgres process, and everything else on the box except wrk (others' jobs disturb a run when high). "
        "Server CPU µs/req = server CPU time / requests served. "
        f"p99 ms, quiet runs: median p99 of the runs in which others used ≤ {QUIET_OTHERS_PCT:.0f}% of a core "
        "(how many of all runs in brackets)."
    ]
    if rounds > 1:
        notes.append(f"Median of {rounds} rounds (req/s range in brackets); non-2xx summed over rounds.")
    if airflow_measured:
        notes.append("tocsin / Airflow: against the Airflow rows measured in this run.")
    if anchor_used:
        notes.append(
            "† Airflow figure: "
            + AIRFLOW_ANCHOR_NOTE
            + f": {_fmt_int(AIRFLOW_ANCHOR_RPS[16])} req/s at 16, {_fmt_int(AIRFLOW_ANCHOR_RPS[64])} at 64."
        )
    out = "\n".join(lines)
    if notes:
        out += "\n\n" + "\n".join(notes)
    if verdicts:
        out += "\n\nDESIGN.md section 7 targets:\n" + "\n".join(verdicts)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: bench_table.py RESULTS.tsv\n")
        return 2
    sys.stdout.write(render(Path(argv[1])) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
