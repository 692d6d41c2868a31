"""The ``tocsin`` command line.

Top-level imports stay minimal: each command imports what it needs, so ``tocsin triggerer`` loads no server
code beyond this module and no database driver at all.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tocsin_server.cli_options import Option, add_options, resolve_options
from tocsin_server.config import ConfigError  # stdlib-only module

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tocsin_server.config import Settings

SCOPES = ("admin", "worker", "triggerer")

DEFAULT_API_URL = "http://127.0.0.1:8080"
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


def _self_command() -> str:
    """How to run ``tocsin`` again from here, as the user started it: ``tocsin`` when that is on PATH and is this
    program, else the path they typed (``.venv/bin/tocsin``), else this interpreter with ``-m``."""
    import shlex  # noqa: PLC0415
    import shutil  # noqa: PLC0415

    program = Path(sys.argv[0])
    if program.name == "tocsin":
        on_path = shutil.which("tocsin")
        if on_path and Path(on_path).resolve() == program.resolve():
            return "tocsin"
        if program.is_absolute() and program.resolve().is_relative_to(Path.cwd().resolve()):
            program = program.resolve().relative_to(Path.cwd().resolve())
        return shlex.quote(str(program) if "/" in str(program) else f"./{program}")
    return f"{shlex.quote(sys.executable)} -m tocsin_server.cli"


def cmd_standalone(args: argparse.Namespace) -> int:
    """The API server on SQLite (migrated) and one triggerer, as two supervised child processes stopped in order."""
    from tocsin_server import standalone  # noqa: PLC0415
    from tocsin_server.config import STANDALONE_SECRET_FILE, ensure_secret_file, load_settings, resolve_secret  # noqa: PLC0415
    from tocsin_server.db import migrate  # noqa: PLC0415

    stop = standalone.StopRequest()
    stop.install()  # from here on, no signal can leave a child behind
    if not standalone.port_free(args.host, args.port):
        standalone.say(f"{args.host}:{args.port} is in use by another program; pick another port with --port")
        return 1
    secret, _ = resolve_secret(os.environ)
    secret = secret or ensure_secret_file(Path(STANDALONE_SECRET_FILE))
    settings = load_settings({**os.environ, "TOCSIN_JWT_SECRET": secret})
    migrate.upgrade(settings.database_url)
    url = f"http://{args.host}:{args.port}"
    env = {**os.environ, "TOCSIN_DATABASE_URL": settings.database_url, "TOCSIN_JWT_SECRET": secret}
    command = [sys.executable, "-m", "tocsin_server.cli"]
    server = standalone.Child(
        "the API server", [*command, "api-server", "--host", args.host, "--port", str(args.port)], lambda: env
    )

    def triggerer_env() -> dict[str, str]:  # a fresh token at every start, so a restart never carries an old one
        token = _issue(settings, ["triggerer"], 7 * 86400, "standalone-triggerer")
        return {**env, "TOCSIN_API_URL": url, "TOCSIN_TOKEN": token}

    triggerer = standalone.Child(
        "the triggerer", [*command, "triggerer", "--capacity", str(args.capacity)], triggerer_env
    )
    server.start()
    if not standalone.wait_ready(url, server, stop):
        if not stop.count:
            standalone.say(f"the API server did not start at {url}")
        server.stop(stop, standalone.SERVER_GRACE_S)
        return 0 if stop.count else 1
    triggerer.start()
    tocsin = _self_command()
    api_url = "" if url == DEFAULT_API_URL else f" --api-url {url}"
    token = _issue(settings, ["admin", "worker", "triggerer"], 7 * 86400, "standalone")
    try:
        sys.stdout.write(
            f"tocsin standalone\n  API:       {url}\n  docs:      {url}/docs\n  database:  {settings.database_url}\n"
            f"  triggerer: pid {triggerer.pid}, capacity {args.capacity}\n"
            f"  try it:    {tocsin} demo --tasks 100{api_url}\n"
            f"  a token:   {tocsin} token create --scope admin --scope worker   (in this folder)\n"
            f"  admin token (7 days):\n{token}\n",
        )
        sys.stdout.flush()
    except OSError:
        pass
    return standalone.supervise(server, triggerer, stop)


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
    """--token, TOCSIN_TOKEN, or a short-lived admin token signed with the secret every command finds."""
    if args.token:
        return str(args.token)
    from tocsin_server.config import Settings, resolve_secret  # noqa: PLC0415

    secret, _ = resolve_secret(os.environ)
    if not secret:
        return None
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


def _triggerer_default(name: str) -> object:
    from tocsin_client.triggerer import TriggererConfig  # noqa: PLC0415 - only to show the defaults in --help

    default = TriggererConfig.__dataclass_fields__[name].default
    return None if default is dataclasses.MISSING else default


def _server_options(what: str) -> list[Option]:
    return [
        Option("--host", f"the address {what} listens on", "127.0.0.1", env="TOCSIN_HOST"),
        Option("--port", f"the port {what} listens on", 8080, env="TOCSIN_PORT", type=int),
    ]


def _triggerer_options() -> list[Option]:
    return [
        Option("--api-url", "the API server to work for", env="TOCSIN_API_URL", env_read_by_config=True),
        Option(
            "--token", "a token with the triggerer scope", env="TOCSIN_TOKEN", env_read_by_config=True, metavar="JWT"
        ),
        Option(
            "--capacity",
            "triggers to hold at most",
            _triggerer_default("capacity"),
            env="TOCSIN_TRIGGERER_CAPACITY",
            type=int,
            env_read_by_config=True,
        ),
        Option(
            "--runners",
            "runner processes (event loops) the triggers are spread over",
            _triggerer_default("runners"),
            env="TOCSIN_TRIGGERER_RUNNERS",
            type=int,
            env_read_by_config=True,
        ),
        Option(
            "--metrics-port",
            "serve Prometheus metrics on this port",
            "off",
            env="TOCSIN_TRIGGERER_METRICS_PORT",
            type=int,
            env_read_by_config=True,
        ),
        Option(
            "--grace-period",
            "seconds to deliver queued events after SIGTERM before completing the job",
            _triggerer_default("grace_period_s"),
            env="TOCSIN_TRIGGERER_GRACE_PERIOD",
            type=float,
            env_read_by_config=True,
        ),
        Option(
            "--allow",
            "a class pattern trigger kwargs may decode to besides tocsin_client.*; repeatable "
            "(the variable takes several, separated by commas or spaces)",
            env="TOCSIN_ALLOWED_DESERIALIZATION_CLASSES",
            action="append",
            env_read_by_config=True,
            metavar="PATTERN",
        ),
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tocsin",
        description="tocsin: deferred-task triggers at scale. Every flag can also be set by the TOCSIN_* variable "
        "its help names; a flag wins over its variable.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    server = commands.add_parser("api-server", help="run the API server", description="Run the API server.")
    add_options(
        server,
        [
            *_server_options("the API server"),
            Option("--workers", "server processes", 1, env="TOCSIN_WORKERS", type=int),
        ],
    )
    server.set_defaults(run=cmd_api_server)

    standalone = commands.add_parser(
        "standalone",
        help="migrate the database and run the API server and a triggerer in one command",
        description="Migrate the database (SQLite ./tocsin.db unless TOCSIN_DATABASE_URL says otherwise), then run "
        "the API server and a triggerer until stopped (Ctrl-C, SIGTERM or SIGHUP stop both, triggerer first).",
    )
    add_options(
        standalone,
        [
            *_server_options("the API server"),
            Option(
                "--capacity",
                "the triggerer's capacity",
                10_000,
                env="TOCSIN_STANDALONE_CAPACITY",
                type=int,
            ),
        ],
    )
    standalone.set_defaults(run=cmd_standalone)

    triggerer = commands.add_parser(
        "triggerer", help="run a triggerer against an API server", description="Run a triggerer."
    )
    add_options(triggerer, _triggerer_options())
    triggerer.set_defaults(run=cmd_triggerer)

    demo = commands.add_parser(
        "demo", help="defer tasks on triggers and watch them resume", description="Defer tasks and watch them resume."
    )
    add_options(
        demo,
        [
            Option("--tasks", "how many tasks to defer", 100, type=int),
            Option("--api-url", "the API server", DEFAULT_API_URL, env="TOCSIN_API_URL"),
            Option(
                "--token",
                "an admin + worker token (without one: signed with the secret found here, as `token create` does)",
                env="TOCSIN_TOKEN",
                metavar="JWT",
            ),
            Option("--delay", "seconds from deferral to the common fire moment", 5.0, type=float),
            Option("--timeout", "seconds to wait for every task to resume", 120.0, type=float),
        ],
    )
    demo.set_defaults(run=cmd_demo)

    db = commands.add_parser("db", help="database migrations", description="Migrate TOCSIN_DATABASE_URL.")
    db.add_argument("action", choices=("upgrade", "downgrade", "current"), help="what to do")
    db.add_argument("revision", nargs="?", help="target revision (default: head for upgrade, -1 for downgrade)")
    db.set_defaults(run=cmd_db)

    key = commands.add_parser("key", help="encryption keys", description="Encryption keys.")
    key_commands = key.add_subparsers(dest="key_command", required=True, metavar="COMMAND")
    key_create = key_commands.add_parser(
        "create", help="print a new key for TOCSIN_TRIGGER_KWARGS_KEYS", description="Print a new Fernet key."
    )
    key_create.set_defaults(run=cmd_key_create)

    token = commands.add_parser("token", help="tokens", description="Tokens.")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="COMMAND")
    create = token_commands.add_parser(
        "create",
        help="print a signed token on stdout",
        description="Print a token signed with the secret every command finds: TOCSIN_JWT_SECRET, the file "
        "TOCSIN_JWT_SECRET_FILE names, or the ./tocsin-jwt-secret `tocsin standalone` keeps in its folder.",
    )
    add_options(
        create,
        [
            Option(
                "--scope",
                f"one of {', '.join(SCOPES)}; repeatable",
                type=parse_scope,
                action="append",
                required=True,
            ),
            Option("--ttl", "lifetime: seconds, or a number with s, m, h or d", "1h", type=parse_ttl),
            Option("--subject", "the sub claim", "cli"),
        ],
    )
    create.set_defaults(run=cmd_token_create)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("tocsin")
    except PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        resolve_options(args)
        return int(args.run(args))
    except ConfigError as exc:
        sys.stderr.write(f"tocsin: configuration error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
