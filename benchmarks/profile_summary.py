"""Summarise a py-spy ``--format raw`` (collapsed stacks) profile of a server under load.

    py-spy record -r 200 -d 10 -p PID -f raw -o profile.txt
    python3 benchmarks/profile_summary.py profile.txt [--us-per-request 290] [--top 30]

Prints, in percent of the samples (record with ``--gil`` so that only the thread running Python counts:
without it, py-spy reports idle thread-pool workers blocked in ``queue.get`` as busy):

* self time by owner: the innermost frame's package (``litestar``, ``asyncpg``, ``tocsin_server.web.auth``…);
  frames of the standard library are charged to the nearest caller outside it, e.g. ``uvicorn (stdlib)``;
* inclusive time of the hottest functions (each function counted once per stack);
* with ``--us-per-request`` (server CPU time per request, e.g. from runtime_get.sh's table), each share
  in microseconds per request.

Standard library only.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_SITE = re.compile(r"(?:site|dist)-packages/(?P<rest>.+)$")
_STDLIB = frozenset(sys.stdlib_module_names)


def owner(path: str) -> str | None:
    """A short owner for a frame's file (py-spy prints paths relative to sys.path); None for the stdlib."""
    if match := _SITE.search(path):
        path = match.group("rest")
    if path.startswith("<"):  # <frozen ...>, <string>
        return None
    parts = path.split("/")
    if parts[0] == "tocsin_server":
        return "tocsin_server." + ".".join(parts[1:]).removesuffix(".py")
    top = parts[0].removesuffix(".py")
    if top in _STDLIB:
        return None
    return top


def parse(path: Path) -> list[tuple[list[tuple[str, str]], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        body, _, count = line.strip().rpartition(" ")
        frames = []
        for item in body.split(";"):
            match = _FRAME.match(item.strip())
            if match is None:  # "process 123:..." / "thread (0x..)" headers
                continue
            frames.append((match.group("func"), match.group("file")))
        if frames:
            stacks.append((frames, int(count)))
    return stacks


def summarise(stacks: list[tuple[list[tuple[str, str]], int]], us_per_request: float | None, top: int) -> str:
    total = sum(count for _, count in stacks)
    self_by_owner: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        charged = None
        via_stdlib = False
        for _func, file in reversed(frames):
            who = owner(file)
            if who is None:
                via_stdlib = True
                continue
            charged = who + (" (stdlib)" if via_stdlib else "")
            break
        self_by_owner[charged or "stdlib (no caller outside it)"] += count
        seen = set()
        for func, file in frames:
            key = f"{owner(file) or Path(file).stem}:{func}"
            if key not in seen:
                seen.add(key)
                inclusive[key] += count

    def row(name: str, count: int) -> str:
        share = count / total
        per_request = f"  {share * us_per_request:6.1f} µs" if us_per_request else ""
        return f"  {100 * share:5.1f}%{per_request}  {name}"

    head = f"{total} samples"
    if us_per_request:
        head += f"; {us_per_request:.0f} µs of server CPU per request shared out by sample counts"
    lines = [head, "self time by owner (innermost frame outside the standard library):"]
    lines += [row(name, count) for name, count in self_by_owner.most_common(top)]
    lines.append("inclusive time by function:")
    lines += [row(name, count) for name, count in inclusive.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument(
        "--us-per-request", type=float, help="server CPU µs per request while sampling, to express shares in µs"
    )
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    stacks = parse(args.profile)
    if not stacks:
        sys.stderr.write(f"no stacks in {args.profile}\n")
        return 1
    sys.stdout.write(summarise(stacks, args.us_per_request, args.top) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
