"""Watching real processes the way an operator would: their children, whether they are gone, their output."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def children_of(pid: int) -> list[int]:
    """The direct children of ``pid`` (Linux /proc)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def is_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (absent, or a zombie nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in {"Z", "X"}


def wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    """Poll until every pid is gone or the deadline passes; the ones still running."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if not is_gone(pid)]
        if not alive:
            return []
        time.sleep(0.05)
    return [pid for pid in pids if not is_gone(pid)]


def wait_for_output(path: Path, text: str, process: subprocess.Popen[bytes] | None, timeout_s: float) -> str:
    """Poll a log file until ``text`` appears; fail early if the process exits first."""
    deadline = time.monotonic() + timeout_s
    output = ""
    while time.monotonic() < deadline:
        output = path.read_text(errors="replace") if path.exists() else ""
        if text in output:
            return output
        if process is not None and process.poll() is not None:
            msg = f"exited with {process.returncode} before printing {text!r}:\n{output[-3000:]}"
            raise AssertionError(msg)
        time.sleep(0.05)
    msg = f"{text!r} not printed within {timeout_s} s:\n{output[-3000:]}"
    raise AssertionError(msg)


def wait_for_count(path: Path, text: str, count: int, timeout_s: float) -> str:
    """Poll a log file until ``text`` appears ``count`` times."""
    deadline = time.monotonic() + timeout_s
    output = ""
    while time.monotonic() < deadline:
        output = path.read_text(errors="replace") if path.exists() else ""
        if output.count(text) >= count:
            return output
        time.sleep(0.05)
    msg = f"{text!r} not printed {count} times within {timeout_s} s:\n{output[-3000:]}"
    raise AssertionError(msg)
