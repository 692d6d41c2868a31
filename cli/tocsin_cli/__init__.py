"""The ``tocsin`` command: a small composition root over the two sides.

It declares every command and flag (help, default and ``TOCSIN_*`` variable, once each), then hands the resolved
values to the side that does the work, imported only when its command runs: ``tocsin_client.commands`` (the base
install: ``triggerer``, ``demo``) or ``tocsin_server.commands`` (``tocsin[server]``: ``api-server``, ``standalone``,
``db``, ``token``, ``key``). A server command asked of a base install says which extra to install.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from tocsin_cli.options import Option, UsageError, add_options, resolve_options
from tocsin_cli.values import (
    JOB_STATES,
    OUTPUTS,
    SCOPES,
    TRIGGER_STATES,
    parse_choice,
    parse_scope,
    parse_ttl,
    parse_uuid,
)

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["build_parser", "main"]

DEFAULT_API_URL: Final = "http://127.0.0.1:8080"
STANDALONE_TOKEN_FILE: Final = Path("tocsin-admin-token")
"""Where ``standalone`` leaves an admin token (mode 0600) for the demo and for the README's commands."""
SERVER_STACK: Final = ("litestar", "sqlalchemy", "alembic", "uvicorn", "jwt")
"""Modules that only ``tocsin[server]`` installs."""


def _server() -> ModuleType:
    missing = [name for name in SERVER_STACK if importlib.util.find_spec(name) is None]
    if missing:
        msg = f"this command runs the server side, which is not installed here: pip install 'tocsin[server]' (missing: {', '.join(missing)})"
        raise UsageError(msg)
    return importlib.import_module("tocsin_server.commands")


def _client() -> ModuleType:
    return importlib.import_module("tocsin_client.commands")


def run_api_server(args: argparse.Namespace) -> int:
    return int(_server().api_server(host=args.host, port=args.port, workers=args.workers))


def run_standalone(args: argparse.Namespace) -> int:
    return int(
        _server().standalone(
            host=args.host,
            port=args.port,
            capacity=args.capacity,
            token_file=STANDALONE_TOKEN_FILE,
            default_api_url=DEFAULT_API_URL,
            metrics_port=args.metrics_port,
        )
    )


def run_db(args: argparse.Namespace) -> int:
    return int(_server().db(action=args.action, revision=args.revision))


def run_token_create(args: argparse.Namespace) -> int:
    return int(_server().token_create(scopes=args.scope, ttl_s=args.ttl, subject=args.subject))


def run_key_create(_: argparse.Namespace) -> int:
    return int(_server().key_create())


def run_key_rotate(args: argparse.Namespace) -> int:
    return int(_server().key_rotate(batch_size=args.batch_size))


def run_key_signing(args: argparse.Namespace) -> int:
    server = _server()
    if args.signing_command == "add":
        return int(server.key_signing_add(file=args.file, kid=args.kid))
    if args.signing_command == "list":
        return int(server.key_signing_list(file=args.file, signing=args.signing))
    verb = server.key_signing_promote if args.signing_command == "promote" else server.key_signing_retire
    return int(verb(file=args.file, kid=args.kid))


def run_triggerer(args: argparse.Namespace) -> int:
    return int(
        _client().triggerer(
            api_url=args.api_url,
            token=args.token,
            capacity=args.capacity,
            runners=args.runners,
            metrics_port=args.metrics_port,
            grace_period_s=args.grace_period,
            allowed_classes=tuple(args.allow) if args.allow else None,
            exit_on_lost_lease=args.exit_on_lost_lease,
        )
    )


def run_demo(args: argparse.Namespace) -> int:
    return int(
        _client().demo(
            tasks=args.tasks,
            api_url=args.api_url,
            token=args.token,
            token_file=STANDALONE_TOKEN_FILE,
            delay_s=args.delay,
            timeout_s=args.timeout,
        )
    )


def run_triggers_list(args: argparse.Namespace) -> int:
    return int(
        _client().triggers_list(
            api_url=args.api_url,
            token=args.token,
            token_file=STANDALONE_TOKEN_FILE,
            output=args.output,
            state=args.state,
            job_id=args.job_id,
            classpath=args.classpath,
            limit=args.limit,
            offset=args.offset,
        )
    )


def run_jobs_list(args: argparse.Namespace) -> int:
    return int(
        _client().jobs_list(
            api_url=args.api_url,
            token=args.token,
            token_file=STANDALONE_TOKEN_FILE,
            output=args.output,
            state=args.state,
            alive=args.alive,
            limit=args.limit,
            offset=args.offset,
        )
    )


def run_logs(args: argparse.Namespace) -> int:
    return int(
        _client().logs(
            api_url=args.api_url,
            token=args.token,
            token_file=STANDALONE_TOKEN_FILE,
            task_instance_id=args.task_instance_id,
            output=args.output,
            try_number=args.try_number,
            follow=args.follow,
            interval_s=args.interval,
        )
    )


OPERATOR_OPTIONS: Final = (
    Option("--api-url", "the API server", DEFAULT_API_URL, env="TOCSIN_API_URL"),
    Option(
        "--token",
        f"a token with the admin scope (without one: the ./{STANDALONE_TOKEN_FILE} that standalone leaves)",
        env="TOCSIN_TOKEN",
        metavar="JWT",
    ),
    Option(
        "--output",
        "table (readable) or json (the API's answer)",
        "table",
        type=parse_choice("--output", OUTPUTS),
        metavar="{table,json}",
    ),
)
"""The flags every operator command (``triggers list``, ``jobs list``, ``logs``) takes."""
PAGE_OPTIONS: Final = (
    Option("--limit", "show at most this many (the API serves up to 1000 per call)", 100, type=int),
    Option("--offset", "skip this many first", 0, type=int),
)


def _server_address() -> list[Option]:
    return [
        Option("--host", "the address the API server listens on", "127.0.0.1", env="TOCSIN_HOST"),
        Option("--port", "the port the API server listens on", 8080, env="TOCSIN_PORT", type=int),
    ]


TRIGGERER_OPTIONS: Final = (
    Option("--api-url", "the API server to work for", env="TOCSIN_API_URL"),
    Option("--token", "a token with the triggerer scope", env="TOCSIN_TOKEN", metavar="JWT"),
    Option("--capacity", "triggers to hold at most", 1000, env="TOCSIN_TRIGGERER_CAPACITY", type=int),
    Option(
        "--runners",
        "runner processes (event loops) the triggers are spread over",
        1,
        env="TOCSIN_TRIGGERER_RUNNERS",
        type=int,
    ),
    Option(
        "--metrics-port",
        "serve Prometheus metrics on this port (off unless given)",
        env="TOCSIN_TRIGGERER_METRICS_PORT",
        type=int,
    ),
    Option(
        "--grace-period",
        "seconds to deliver queued events after SIGTERM before completing the job",
        30.0,
        env="TOCSIN_TRIGGERER_GRACE_PERIOD",
        type=float,
    ),
    Option(
        "--allow",
        "a class pattern trigger kwargs may decode to besides tocsin_client.*; repeatable "
        "(the variable takes several, separated by commas or spaces)",
        env="TOCSIN_ALLOWED_DESERIALIZATION_CLASSES",
        action="append",
        metavar="PATTERN",
    ),
    Option(
        "--exit-on-lost-lease",
        "exit with code 3 when the server ended the job's lease, instead of registering a new job and carrying on "
        "(for process managers that prefer to restart it)",
        False,
        env="TOCSIN_TRIGGERER_EXIT_ON_LOST_LEASE",
        action="store_true",
    ),
)
"""The triggerer's flags; their defaults are ``TriggererConfig``'s (a test keeps the two equal)."""


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    run: Callable[[argparse.Namespace], int],
    options: Sequence[Option] = (),
    description: str | None = None,
) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=summary, description=description or summary[0].upper() + summary[1:] + ".")
    add_options(parser, options)
    parser.set_defaults(run=run)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tocsin",
        description="tocsin: deferred-task triggers at scale. Every flag can also be set by the TOCSIN_* variable "
        "its help names; a flag wins over its variable.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _command(
        commands,
        "api-server",
        "run the API server",
        run_api_server,
        [*_server_address(), Option("--workers", "server processes", 1, env="TOCSIN_WORKERS", type=int)],
    )
    _command(
        commands,
        "standalone",
        "migrate the database and run the API server and a triggerer in one command",
        run_standalone,
        [
            *_server_address(),
            Option("--capacity", "the triggerer's capacity", 10_000, env="TOCSIN_STANDALONE_CAPACITY", type=int),
            Option(
                "--metrics-port",
                "serve the triggerer's Prometheus metrics on this port (off unless given; the API server's are at "
                "/metrics)",
                env="TOCSIN_TRIGGERER_METRICS_PORT",
                type=int,
            ),
        ],
        description="Migrate the database (SQLite ./tocsin.db unless TOCSIN_DATABASE_URL says otherwise), then run "
        "the API server and a triggerer until stopped (Ctrl-C, SIGTERM or SIGHUP stop both, triggerer first). "
        f"Leaves an admin token in ./{STANDALONE_TOKEN_FILE} for the demo and the README's commands.",
    )
    _command(commands, "triggerer", "run a triggerer against an API server", run_triggerer, TRIGGERER_OPTIONS)
    _command(
        commands,
        "demo",
        "defer tasks on triggers and watch them resume",
        run_demo,
        [
            Option("--tasks", "how many tasks to defer", 100, type=int),
            Option("--api-url", "the API server", DEFAULT_API_URL, env="TOCSIN_API_URL"),
            Option(
                "--token",
                f"an admin + worker token (without one: the ./{STANDALONE_TOKEN_FILE} that standalone leaves)",
                env="TOCSIN_TOKEN",
                metavar="JWT",
            ),
            Option("--delay", "seconds from deferral to the common fire moment", 5.0, type=float),
            Option("--timeout", "seconds to wait for every task to resume", 120.0, type=float),
        ],
    )
    _operator_commands(commands)
    db = _command(commands, "db", "migrate the database TOCSIN_DATABASE_URL names", run_db)
    db.add_argument("action", choices=("upgrade", "downgrade", "current"), help="what to do")
    db.add_argument("revision", nargs="?", help="target revision (default: head for upgrade, -1 for downgrade)")

    key = commands.add_parser(
        "key", help="encryption and token-signing keys", description="Encryption and token-signing keys."
    )
    key_commands = key.add_subparsers(dest="key_command", required=True, metavar="COMMAND")
    _command(key_commands, "create", "print a new key for TOCSIN_TRIGGER_KWARGS_KEYS", run_key_create)
    _command(
        key_commands,
        "rotate",
        "re-encrypt every stored secret with the first key of TOCSIN_TRIGGER_KWARGS_KEYS",
        run_key_rotate,
        [Option("--batch-size", "values re-encrypted per transaction", 500, type=int)],
        description="Re-encrypt every stored secret (trigger kwargs, connection passwords and extras, variables) "
        "with the first key of TOCSIN_TRIGGER_KWARGS_KEYS, in batches, while servers run. Afterwards the other "
        "keys can be removed.",
    )

    _add_key_signing(key_commands)

    token = commands.add_parser("token", help="tokens", description="Tokens.")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="COMMAND")
    _command(
        token_commands,
        "create",
        "print a signed token on stdout",
        run_token_create,
        [
            Option(
                "--scope", f"one of {', '.join(SCOPES)}; repeatable", type=parse_scope, action="append", required=True
            ),
            Option("--ttl", "lifetime: seconds, or a number with s, m, h or d", "1h", type=parse_ttl),
            Option("--subject", "the sub claim", "cli"),
        ],
        description="Print a token signed with the secret every command finds: TOCSIN_JWT_SECRET, the file "
        "TOCSIN_JWT_SECRET_FILE names, or the ./tocsin-jwt-secret `tocsin standalone` keeps in its folder.",
    )
    return parser


def _add_key_signing(key_commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``tocsin key signing add|promote|retire|list``: the steps of a signing-key rotation (docs/operations.md)."""
    signing = key_commands.add_parser(
        "signing",
        help="token-signing keys in the keyring file TOCSIN_JWT_KEYS_FILE names",
        description="Token-signing keys: a keyring file of key ids and secrets, one of them signing, every one "
        "verifying. Rotate: add (verifies everywhere), promote (signs), after the longest token lifetime retire "
        "the old key. Servers re-read the file within TOCSIN_JWT_KEYS_RELOAD_S.",
    )
    verbs = signing.add_subparsers(dest="signing_command", required=True, metavar="COMMAND")
    file = Option("--file", "the keyring file", env="TOCSIN_JWT_KEYS_FILE", metavar="PATH")
    _command(
        verbs,
        "add",
        "add a new key that verifies but does not sign yet, and print its id",
        run_key_signing,
        [file, Option("--kid", "the new key's id (default: one made of today's date and random hex)")],
        description="Add a new key that verifies but does not sign yet, and print its id. Without the file yet, "
        "create it (mode 0600): the secret every command finds today (TOCSIN_JWT_SECRET, its file or "
        "./tocsin-jwt-secret) becomes the key 'legacy', which keeps signing and verifies tokens without a kid.",
    )
    for verb, summary in (
        ("promote", "make a key the one that signs; the one before keeps verifying"),
        ("retire", "remove a key that no longer signs: tokens it signed get 401"),
    ):
        parser = _command(verbs, verb, summary, run_key_signing, [file])
        parser.add_argument("kid", metavar="KID", help="the key's id (see: tocsin key signing list)")
    _command(
        verbs,
        "list",
        "print each key id and whether it signs (never a secret)",
        run_key_signing,
        [file, Option("--signing", "print only the id of the key that signs", False, action="store_true")],
    )


def _operator_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``triggers list``, ``jobs list`` and ``logs``: admin API clients (the base install is enough)."""
    triggers = commands.add_parser("triggers", help="triggers (admin API)", description="Triggers (admin API).")
    trigger_commands = triggers.add_subparsers(dest="triggers_command", required=True, metavar="COMMAND")
    _command(
        trigger_commands,
        "list",
        "list triggers: state, holding job, age, task instance, last error",
        run_triggers_list,
        [
            *OPERATOR_OPTIONS,
            Option(
                "--state",
                "only unassigned, assigned (to a live job) or orphaned (held by a job no longer alive) triggers "
                "(default: any state)",
                type=parse_choice("--state", TRIGGER_STATES),
                metavar="{" + ",".join(TRIGGER_STATES) + "}",
            ),
            Option("--job-id", "only triggers held by this job (default: any job or none)", type=int, metavar="ID"),
            Option("--classpath", "only triggers of this class, its dotted path exactly (default: any class)"),
            *PAGE_OPTIONS,
        ],
    )
    jobs = commands.add_parser("jobs", help="triggerer jobs (admin API)", description="Triggerer jobs (admin API).")
    job_commands = jobs.add_subparsers(dest="jobs_command", required=True, metavar="COMMAND")
    _command(
        job_commands,
        "list",
        "list triggerer jobs, newest first: state, liveness, host, triggers held, last heartbeat",
        run_jobs_list,
        [
            *OPERATOR_OPTIONS,
            Option(
                "--state",
                "only jobs in this state (default: any state)",
                type=parse_choice("--state", JOB_STATES),
                metavar="{" + ",".join(JOB_STATES) + "}",
            ),
            Option("--alive", "only jobs that are alive (default: alive or not)", action="store_true"),
            *PAGE_OPTIONS,
        ],
    )
    logs = _command(
        commands,
        "logs",
        "print the trigger log lines of a task instance",
        run_logs,
        [
            *OPERATOR_OPTIONS,
            Option("--try-number", "only lines of this try (default: every try)", type=int, metavar="N"),
            Option("--follow", "keep printing new lines as they are stored, until Ctrl-C", False, action="store_true"),
            Option("--interval", "seconds between two polls while following", 1.0, type=float),
        ],
        description="Print the trigger log lines of a task instance, oldest first (--output json: one JSON object "
        "per line). With --follow, keep polling for new lines from the last one seen (each line once, in order) "
        "until Ctrl-C, which exits 0.",
    )
    logs.add_argument("task_instance_id", type=parse_uuid, metavar="TASK_INSTANCE_ID", help="the task instance id")


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
    except UsageError as exc:
        sys.stderr.write(f"tocsin {args.command}: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130
