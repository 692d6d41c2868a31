"""A PostgreSQL instance of a test's own, which it may stop and start (crash it, even) mid-run.

The machine's PostgreSQL at 127.0.0.1:5432 is shared by every test and session, so nothing may restart it.
This one is made with ``initdb`` into a fresh folder, listens on a free loopback port only (no Unix socket),
and is always stopped and deleted when the context ends. PostgreSQL refuses to run as root, so as root it runs
as the ``postgres`` account (``runuser``), in a folder that account owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from harness.live_server import free_port

BIN_ROOT = Path("/usr/lib/postgresql")
SERVICE_ACCOUNT = "postgres"
# Speed, not durability against a power cut: fsync=off keeps every committed write in the OS page cache, which
# survives a crash of PostgreSQL itself (``pg_ctl stop -m immediate``); synchronous_commit stays on, so a commit
# never returns before its WAL left PostgreSQL's memory.
_SETTINGS = ("fsync=off", "full_page_writes=off", "max_connections=200", "shared_buffers=32MB")


class PrivatePostgresError(RuntimeError):
    """The instance could not be made or started; the message says why."""


def bin_dir() -> Path:
    """The newest installed PostgreSQL's programs (Debian keeps them in /usr/lib/postgresql/<major>/bin)."""
    found = sorted(BIN_ROOT.glob("*/bin/initdb"), key=lambda path: int(path.parent.parent.name))
    if not found:
        msg = f"no initdb under {BIN_ROOT}/*/bin: install PostgreSQL's server package (apt-get install postgresql)"
        raise PrivatePostgresError(msg)
    return found[-1].parent


@dataclass
class PrivatePostgres:
    """One running instance: ``stop()``/``start()`` it at will; ``url`` names its ``tocsin`` database."""

    data: Path
    port: int
    programs: Path
    account: str | None  # run the programs as this account (we are root), or as ourselves

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/tocsin"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/tocsin"

    @property
    def log(self) -> Path:
        return self.data.parent / "postgres.log"

    def _run(self, *command: str, timeout_s: float = 60.0) -> None:
        argv = [str(self.programs / command[0]), *command[1:]]
        if self.account is not None:
            argv = ["runuser", "-u", self.account, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            msg = f"{' '.join(command[:2])} failed ({done.returncode}): {done.stdout}{done.stderr}\n{log}"
            raise PrivatePostgresError(msg)

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60")

    def stop(self, mode: str = "immediate") -> None:
        """Stop it; ``immediate`` is a crash (no checkpoint, recovery on the next start), ``fast`` a clean stop."""
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "60")


def _account() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError:
        msg = f"running as root and there is no {SERVICE_ACCOUNT!r} account for PostgreSQL to run as"
        raise PrivatePostgresError(msg) from None
    return SERVICE_ACCOUNT


async def _create_database(admin_dsn: str) -> None:
    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute("CREATE DATABASE tocsin")
    finally:
        await connection.close()


def _kill_postmaster(data: Path) -> None:
    """The last resort when pg_ctl cannot stop it: SIGQUIT (immediate shutdown) to the pid its lock file names."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        os.kill(int((data / "postmaster.pid").read_text().split()[0]), signal.SIGQUIT)


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A fresh instance with an empty ``tocsin`` database; stopped and deleted on the way out, whatever happened."""
    account = _account()
    # Under /tmp itself, not pytest's tmp_path: root's pytest folders are 0700, closed to the postgres account.
    root = Path(tempfile.mkdtemp(prefix="tocsin-private-pg-"))
    instance = PrivatePostgres(data=root / "data", port=free_port(), programs=bin_dir(), account=account)
    try:
        if account is not None:
            entry = pwd.getpwnam(account)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        instance._run("initdb", "-D", str(instance.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        with (instance.data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {instance.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n")
            conf.writelines(f"{setting.replace('=', ' = ')}\n" for setting in _SETTINGS)
        instance.start()
        asyncio.run(_create_database(instance.admin_dsn))
        yield instance
    finally:
        if (instance.data / "postmaster.pid").exists():
            try:
                instance.stop("immediate")
            except (PrivatePostgresError, subprocess.TimeoutExpired):
                _kill_postmaster(instance.data)
        shutil.rmtree(root, ignore_errors=True)
