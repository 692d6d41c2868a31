"""The ``tocsin`` command line.

Top-level imports stay minimal: each command imports what it needs, so ``tocsin triggerer`` loads no server
code beyond this module and no database driver at all.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tocsin_server.config import ConfigError  # stdlib-only module

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tocsin_server.config import Settings

SCOPES = ("admin", "worker", "triggerer")

STANDALONE_SECRET_FILE = "tocsin-jwt-secret"  # noqa: S105 - a file name, not a secret
_TTL = re.compile(r"^(?P<amount>\d+)(?P<unit>[smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(raw: str) -> int:
    match = _TTL.match(raw.strip())
    if match is None or int(match.group("amount")) == 0:
        msg = f"--ttl {raw!r}: use a positive number of seconds, or a number with s, m, h or d (e.g. 3600, 30m, 7d)"
        raise argparse.ArgumentTypeError(msg)
    return int(match.group("amount")) * _UNIT_SECONDS[match.group("unit")]


def parse_scope(raw: str) -> str:
    if raw not in SCOPES:
        msg = f"--scope {raw!r}: choose from {', '.join(SCOPES)}"
        raise argparse.ArgumentTypeError(msg)
    return raw


def _issue(settings: Settings, scopes: list[str], ttl_s: int, subject: str) -> str:
    from tocsin_server.tokens import TokenAuthority  # noqa: PLC0415

    authority = TokenAuthority(settings.jwt_secret, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    return authority.issue(subject, scopes, ttl_s)


def _serve(settings: Settings, host: str, port: int, workers: int) -> None:
    import uvicorn  # noqa: PLC0415

    os.environ["TOCSIN_DATABASE_URL"] = settings.database_url
    os.environ["TOCSIN_JWT_SECRET"] = settings.jwt_secret
    uvicorn.run(
        "tocsin_server.asgi:create_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


def cmd_api_server(args: argparse.Namespace) -> int:
    from tocsin_server.config import load_settings  # noqa: PLC0415

    settings = load_settings()
    _serve(settings, args.host, args.port, args.workers)
    return 0


def _port_free(host: str, port: int) -> bool:
    import socket  # noqa: PLC0415

    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _wait_ready(url: str, process: subprocess.Popen[bytes], deadline_s: float = 60.0) -> bool:
    import httpx  # noqa: PLC0415

    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if httpx.get(f"{url}/ready", timeout=1.0).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    return False


def _stop(process: subprocess.Popen[bytes], timeout_s: float) -> int:
    """SIGTERM, wait, then SIGKILL; the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def cmd_standalone(args: argparse.Namespace) -> int:
    """The API server on SQLite (migrated) and one triggerer, as two child processes stopped in order."""
    from tocsin_server.config import ensure_secret_file, load_settings  # noqa: PLC0415
    from tocsin_server.db import migrate  # noqa: PLC0415

    if not _port_free(args.host, args.port):
        sys.stderr.write(f"tocsin standalone: {args.host}:{args.port} is in use; pick another with --port\n")
        return 1
    secret = os.environ.get("TOCSIN_JWT_SECRET") or ensure_secret_file(Path(STANDALONE_SECRET_FILE))
    settings = load_settings({**os.environ, "TOCSIN_JWT_SECRET": secret})
    migrate.upgrade(settings.database_url)
    token = _issue(settings, ["admin", "worker", "triggerer"], 7 * 86400, "standalone")
    triggerer_token = _issue(settings, ["triggerer"], 7 * 86400, "standalone-triggerer")
    url = f"http://{args.host}:{args.port}"
    env = {**os.environ, "TOCSIN_DATABASE_URL": settings.database_url, "TOCSIN_JWT_SECRET": secret}
    command = [sys.executable, "-m", "tocsin_server.cli"]
    # Own sessions: Ctrl-C reaches only this process, which stops the triggerer first (it completes its job
    # while the API server still answers), then the server.
    server = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [*command, "api-server", "--host", args.host, "--port", str(args.port)], env=env, start_new_session=True
    )
    triggerer: subprocess.Popen[bytes] | None = None
    try:
        if not _wait_ready(url, server):
            sys.stderr.write(f"tocsin standalone: the API server did not start at {url}\n")
            return 1
        triggerer_env = {**env, "TOCSIN_API_URL": url, "TOCSIN_TOKEN": triggerer_token}
        triggerer = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [*command, "triggerer", "--capacity", str(args.capacity)], env=triggerer_env, start_new_session=True
        )
        sys.stdout.write(
            f"tocsin standalone\n  API:       {url}\n  docs:      {url}/docs\n  database:  {settings.database_url}\n"
            f"  triggerer: pid {triggerer.pid}, capacity {args.capacity}\n"
            f"  try it:    tocsin demo --tasks 100\n"
            f"  admin token (7 days):\n{token}\n",
        )
        sys.stdout.flush()
        while server.poll() is None and triggerer.poll() is None:
            time.sleep(0.2)
        name, failed = ("the API server", server) if server.poll() is not None else ("the triggerer", triggerer)
        sys.stderr.write(f"tocsin standalone: {name} exited with {failed.returncode}; stopping\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("tocsin standalone: stopping the triggerer, then the API server\n")
        return 0
    finally:
        if triggerer is not None:
            _stop(triggerer, 45.0)
        _stop(server, 20.0)


def cmd_triggerer(args: argparse.Namespace) -> int:
    """Run a triggerer: flags win over TOCSIN_* variables."""
    from tocsin_client.triggerer import ConfigError as TriggererConfigError  # noqa: PLC0415
    from tocsin_client.triggerer import TriggererConfig, run  # noqa: PLC0415

    try:
        config = TriggererConfig.from_env(
            os.environ,
            api_url=args.api_url,
            token=args.token,
            capacity=args.capacity,
            runners=args.runners,
            metrics_port=args.metrics_port,
            grace_period_s=args.grace_period,
            allowed_classes=tuple(args.allow) if args.allow else None,
        )
    except TriggererConfigError as exc:
        sys.stderr.write(f"tocsin triggerer: configuration error: {exc}\n")
        return 2
    return run(config)


def _demo_token(args: argparse.Namespace) -> str | None:
    """--token, TOCSIN_TOKEN, or a short-lived admin token signed with the standalone secret in this folder."""
    if args.token or os.environ.get("TOCSIN_TOKEN"):
        return str(args.token or os.environ["TOCSIN_TOKEN"])
    secret_file = Path(STANDALONE_SECRET_FILE)
    secret = os.environ.get("TOCSIN_JWT_SECRET") or (secret_file.read_text().strip() if secret_file.exists() else "")
    if not secret:
        return None
    from tocsin_server.config import Settings  # noqa: PLC0415

    return _issue(Settings(jwt_secret=secret), ["admin", "worker"], 3600, "demo")


def cmd_demo(args: argparse.Namespace) -> int:
    """Defer N tasks on triggers that fire together; show them resume; print p50/p99 fire-to-resume."""
    import asyncio  # noqa: PLC0415

    from tocsin_client import AsyncClient, TocsinError  # noqa: PLC0415
    from tocsin_client.demo import percentile, run_demo  # noqa: PLC0415

    token = _demo_token(args)
    if token is None:
        sys.stderr.write("tocsin demo: pass --token (or TOCSIN_TOKEN), or run it where `tocsin standalone` runs\n")
        return 2

    async def main() -> int:
        async with AsyncClient(args.api_url, token=token) as client:
            result = await run_demo(client, args.tasks, delay_s=args.delay, timeout_s=args.timeout)
        sys.stdout.write(f"resumed {result.resumed}/{result.tasks} tasks\n")
        if result.latencies_s:
            p50, p99 = (percentile(result.latencies_s, q) * 1000 for q in (0.5, 0.99))
            sys.stdout.write(f"fire-to-resume: p50 {p50:.0f} ms, p99 {p99:.0f} ms (polled every 50 ms)\n")
        if result.late_deferrals:
            sys.stdout.write("note: deferring took longer than --delay; latencies include that overrun\n")
        return 0 if result.ok else 1

    try:
        return asyncio.run(main())
    except TocsinError as exc:
        sys.stderr.write(f"tocsin demo: {exc}\n")
        return 1


def cmd_db(args: argparse.Namespace) -> int:
    from tocsin_server.config import load_settings  # noqa: PLC0415
    from tocsin_server.db import migrate  # noqa: PLC0415

    url = load_settings(require_secret=False).database_url
    if args.action == "upgrade":
        migrate.upgrade(url, args.revision or "head")
    elif args.action == "downgrade":
        migrate.downgrade(url, args.revision or "-1")
    sys.stdout.write(f"{migrate.current(url) or 'base (empty)'}\n")
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    from tocsin_server.config import load_settings  # noqa: PLC0415

    settings = load_settings()
    sys.stdout.write(_issue(settings, args.scope, args.ttl, args.subject) + "\n")
    return 0


def cmd_key_create(_: argparse.Namespace) -> int:
    from cryptography.fernet import Fernet  # noqa: PLC0415

    sys.stdout.write(Fernet.generate_key().decode() + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tocsin", description="tocsin: deferred-task triggers at scale.")
    commands = parser.add_subparsers(dest="command", required=True)

    server = commands.add_parser("api-server", help="run the API server")
    server.add_argument("--host", default=os.environ.get("TOCSIN_HOST", "127.0.0.1"))
    server.add_argument("--port", type=int, default=int(os.environ.get("TOCSIN_PORT", "8080")))
    server.add_argument("--workers", type=int, default=int(os.environ.get("TOCSIN_WORKERS", "1")))
    server.set_defaults(run=cmd_api_server)

    standalone = commands.add_parser("standalone", help="migrate the SQLite default and run everything in one command")
    standalone.add_argument("--host", default="127.0.0.1")
    standalone.add_argument("--port", type=int, default=8080)
    standalone.add_argument("--capacity", type=int, default=10_000, help="the triggerer's capacity")
    standalone.set_defaults(run=cmd_standalone)

    triggerer = commands.add_parser("triggerer", help="run a triggerer against an API server")
    triggerer.add_argument("--api-url", help="the API server (env TOCSIN_API_URL)")
    triggerer.add_argument("--token", help="a token with the triggerer scope (env TOCSIN_TOKEN)")
    triggerer.add_argument("--capacity", type=int, help="triggers to hold (env TOCSIN_TRIGGERER_CAPACITY; 1000)")
    triggerer.add_argument("--runners", type=int, help="runner processes (env TOCSIN_TRIGGERER_RUNNERS; 1)")
    triggerer.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    triggerer.add_argument("--grace-period", type=float, help="seconds to deliver queued events on SIGTERM (30)")
    triggerer.add_argument(
        "--allow", action="append", help="a class pattern trigger kwargs may decode to, besides tocsin_client.*"
    )
    triggerer.set_defaults(run=cmd_triggerer)

    demo = commands.add_parser("demo", help="defer tasks on triggers and watch them resume")
    demo.add_argument("--tasks", type=int, default=100)
    demo.add_argument("--api-url", default=os.environ.get("TOCSIN_API_URL", "http://127.0.0.1:8080"))
    demo.add_argument("--token", help="admin + worker token (default: TOCSIN_TOKEN, or the standalone secret here)")
    demo.add_argument("--delay", type=float, default=5.0, help="seconds from deferral to the common fire moment")
    demo.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for every task to resume")
    demo.set_defaults(run=cmd_demo)

    db = commands.add_parser("db", help="database migrations")
    db.add_argument("action", choices=("upgrade", "downgrade", "current"))
    db.add_argument("revision", nargs="?", help="target revision (upgrade: head, downgrade: -1 by default)")
    db.set_defaults(run=cmd_db)

    key = commands.add_parser("key", help="encryption keys")
    key_commands = key.add_subparsers(dest="key_command", required=True)
    key_create = key_commands.add_parser("create", help="print a new key for TOCSIN_TRIGGER_KWARGS_KEYS")
    key_create.set_defaults(run=cmd_key_create)

    token = commands.add_parser("token", help="tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    create = token_commands.add_parser("create", help="print a signed token on stdout")
    create.add_argument(
        "--scope", type=parse_scope, action="append", required=True, help=f"one of {', '.join(SCOPES)}; repeatable"
    )
    create.add_argument(
        "--ttl", type=parse_ttl, default=parse_ttl("1h"), help="lifetime: seconds or 30m, 12h, 7d (default 1h)"
    )
    create.add_argument("--subject", default="cli", help="the sub claim (default: cli)")
    create.set_defaults(run=cmd_token_create)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except ConfigError as exc:
        sys.stderr.write(f"tocsin: configuration error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
