"""Debian's haproxy for tests: found, or installed with apt-get when we may, and run in the foreground."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

DEBIAN_BINARY = Path("/usr/sbin/haproxy")
_INSTALL = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "haproxy"]


class HaproxyUnavailableError(RuntimeError):
    """haproxy is not installed and cannot be installed here; the message says why."""


def _found() -> str | None:
    return shutil.which("haproxy") or (str(DEBIAN_BINARY) if DEBIAN_BINARY.exists() else None)


def ensure_haproxy() -> str:
    """The haproxy binary, installing Debian's package first when it is missing (as root, with apt-get)."""
    if found := _found():
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        msg = "haproxy is not installed and apt-get cannot install it here (not root, or no apt-get)"
        raise HaproxyUnavailableError(msg)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(_INSTALL, env=env, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:  # the package lists may be missing or stale: refresh them once
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600, check=False)
        done = subprocess.run(_INSTALL, env=env, capture_output=True, text=True, timeout=600, check=False)
    if (found := _found()) is None:
        msg = f"apt-get install haproxy failed ({done.returncode}): {done.stderr[-1000:]}"
        raise HaproxyUnavailableError(msg)
    return found


def check_config(binary: str, config: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``haproxy -c``: haproxy's own verdict on a configuration file, with the variables it expands."""
    return subprocess.run(
        [binary, "-c", "-f", str(config)], env={**os.environ, **env}, capture_output=True, text=True, check=False
    )


@contextmanager
def running_haproxy(binary: str, config: Path, env: Mapping[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """haproxy in the foreground (``-db``) on ``config``; stopped (SIGTERM, then SIGKILL) on the way out."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [binary, "-db", "-f", str(config)], env={**os.environ, **env}, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
