"""The ``tocsin`` command line.

Top-level imports stay minimal: each command imports what it needs, so ``tocsin triggerer`` loads no server
code beyond this module and no database driver at all.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
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


def cmd_standalone(args: argparse.Namespace) -> int:
    from tocsin_server.config import ensure_secret_file, load_settings  # noqa: PLC0415
    from tocsin_server.db import migrate  # noqa: PLC0415

    secret = os.environ.get("TOCSIN_JWT_SECRET") or ensure_secret_file(Path(STANDALONE_SECRET_FILE))
    settings = load_settings({**os.environ, "TOCSIN_JWT_SECRET": secret})
    migrate.upgrade(settings.database_url)
    token = _issue(settings, ["admin", "worker", "triggerer"], 7 * 86400, "standalone")
    url = f"http://{args.host}:{args.port}"
    sys.stdout.write(
        f"tocsin standalone\n  API:      {url}\n  docs:     {url}/docs\n  database: {settings.database_url}\n"
        f"  admin token (7 days):\n{token}\n",
    )
    sys.stdout.flush()
    _serve(settings, args.host, args.port, 1)
    return 0


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
    standalone.set_defaults(run=cmd_standalone)

    db = commands.add_parser("db", help="database migrations")
    db.add_argument("action", choices=("upgrade", "downgrade", "current"))
    db.add_argument("revision", nargs="?", help="target revision (upgrade: head, downgrade: -1 by default)")
    db.set_defaults(run=cmd_db)

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
