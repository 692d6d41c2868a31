"""The client side's commands (``tocsin triggerer``, ``tocsin demo``), called by the ``tocsin`` command with the
values of their flags. Nothing here needs the server stack."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

from tocsin_wire.settings import Env, SettingsError, load

if TYPE_CHECKING:
    from collections.abc import Callable
    from uuid import UUID

    from tocsin_client.operator import Connection

__all__ = [
    "DEFAULT_API_URL",
    "DemoSettings",
    "OperatorSettings",
    "demo",
    "jobs_list",
    "logs",
    "triggerer",
    "triggers_list",
]

DEFAULT_API_URL: Final = "http://127.0.0.1:8080"


def triggerer(
    *,
    api_url: str | None,
    token: str | None,
    capacity: int | None,
    runners: int | None,
    metrics_port: int | None,
    grace_period_s: float | None,
    allowed_classes: tuple[str, ...] | None,
    exit_on_lost_lease: bool | None,
) -> int:
    """Run a triggerer until it is stopped; its exit code. A flag that is None leaves its setting to its
    ``TOCSIN_*`` variable and default (``TriggererConfig``)."""
    from tocsin_wire.logs import configure_logging, load_log_settings  # noqa: PLC0415

    from tocsin_client.triggerer import ConfigError, TriggererConfig, run  # noqa: PLC0415

    try:
        configure_logging(load_log_settings(os.environ))  # its runners read the same variables
    except SettingsError as exc:
        sys.stderr.write(f"tocsin triggerer: configuration error: {exc}\n")
        return 2
    try:
        config = TriggererConfig.from_env(
            os.environ,
            api_url=api_url,
            token=token,
            capacity=capacity,
            runners=runners,
            metrics_port=metrics_port,
            grace_period_s=grace_period_s,
            allowed_classes=allowed_classes,
            exit_on_lost_lease=exit_on_lost_lease,
        )
    except ConfigError as exc:
        sys.stderr.write(f"tocsin triggerer: configuration error: {exc}\n")
        return 2
    if config.otel:
        from tocsin_client._tracing import configure_sdk  # noqa: PLC0415 - OpenTelemetry loads only when on

        if (problem := configure_sdk()) is not None:
            sys.stderr.write(f"tocsin triggerer: configuration error: {problem}\n")
            return 2
    return run(config)


@dataclass(frozen=True, slots=True)
class DemoSettings:
    api_url: Annotated[str, Env("TOCSIN_API_URL")] = DEFAULT_API_URL
    token: Annotated[str, Env("TOCSIN_TOKEN")] = field(default="", repr=False)


def _token(token: str, token_file: Path) -> str | None:
    if token:
        return token
    try:
        return token_file.read_text().strip() or None
    except FileNotFoundError:
        return None


def demo(
    *, tasks: int, api_url: str | None, token: str | None, token_file: Path, delay_s: float, timeout_s: float
) -> int:
    """Defer ``tasks`` tasks on triggers that fire together; show them resume; print p50/p99 fire-to-resume."""
    from tocsin_client import AsyncClient, TocsinError  # noqa: PLC0415
    from tocsin_client.demo import percentile, run_demo  # noqa: PLC0415

    try:
        settings = load(DemoSettings, os.environ, api_url=api_url, token=token)
    except SettingsError as exc:
        sys.stderr.write(f"tocsin demo: configuration error: {exc}\n")
        return 2
    api_url = settings.api_url
    found = _token(settings.token, token_file)
    if found is None:
        sys.stderr.write(
            f"tocsin demo: pass --token (or TOCSIN_TOKEN), or run it in the folder where `tocsin standalone` runs "
            f"(it leaves ./{token_file} there)\n"
        )
        return 2

    async def main() -> int:
        async with AsyncClient(api_url, token=found) as client:
            result = await run_demo(client, tasks, delay_s=delay_s, timeout_s=timeout_s)
        sys.stdout.write(f"resumed {result.resumed}/{result.tasks} tasks\n")
        if result.latencies_s:
            p50, p99 = (percentile(result.latencies_s, q) * 1000 for q in (0.5, 0.99))
            how = "the watch feed" if result.observed == "watch" else "polled every 50 ms"
            sys.stdout.write(
                f"fire-to-resume: p50 {p50:.0f} ms, p99 {p99:.0f} ms "
                f"(from each trigger's fire moment to its change reaching this client, through {how})\n"
            )
        if result.late_deferrals:
            sys.stdout.write("note: deferring took longer than --delay; latencies include that overrun\n")
        return 0 if result.ok else 1

    try:
        return asyncio.run(main())
    except TocsinError as exc:
        sys.stderr.write(f"tocsin demo: {exc}\n")
        return 1


# -- the operator commands (tocsin triggers list, jobs list, logs) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    api_url: Annotated[str, Env("TOCSIN_API_URL")] = DEFAULT_API_URL
    token: Annotated[str, Env("TOCSIN_TOKEN")] = field(default="", repr=False)


def _operator(
    name: str, api_url: str | None, token: str | None, token_file: Path, run: Callable[[Connection], None]
) -> int:
    """Resolve where to connect and with which token, run the command, turn a failure into one line."""
    from tocsin_client.errors import TocsinError  # noqa: PLC0415
    from tocsin_client.operator import Connection, explain  # noqa: PLC0415

    try:
        settings = load(OperatorSettings, os.environ, api_url=api_url, token=token)
    except SettingsError as exc:
        sys.stderr.write(f"tocsin {name}: configuration error: {exc}\n")
        return 2
    # No token at all is sent as none: the server's 401 says so, not a guess of ours.
    connection = Connection(
        api_url=settings.api_url,
        token=_token(settings.token, token_file),
        token_hint=f"pass --token or TOCSIN_TOKEN (tocsin token create --scope admin), or run it in the folder "
        f"where `tocsin standalone` left ./{token_file}",
    )
    try:
        run(connection)
    except TocsinError as exc:
        failure = explain(exc, connection)
        sys.stderr.write(f"tocsin {name}: {failure}\n")
        return failure.code
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly; stdout goes to /dev/null so its final flush cannot fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


def triggers_list(
    *,
    api_url: str | None,
    token: str | None,
    token_file: Path,
    output: str,
    state: str | None,
    job_id: int | None,
    classpath: str | None,
    limit: int,
    offset: int,
) -> int:
    """Print the triggers the admin API lists (filtered), as a table or as its JSON."""
    from tocsin_client import operator  # noqa: PLC0415

    return _operator(
        "triggers list",
        api_url,
        token,
        token_file,
        lambda connection: operator.triggers_list(
            connection, output=output, state=state, job_id=job_id, classpath=classpath, limit=limit, offset=offset
        ),
    )


def jobs_list(
    *,
    api_url: str | None,
    token: str | None,
    token_file: Path,
    output: str,
    state: str | None,
    alive: bool | None,
    limit: int,
    offset: int,
) -> int:
    """Print the triggerer jobs the admin API lists, as a table or as its JSON."""
    from tocsin_client import operator  # noqa: PLC0415

    return _operator(
        "jobs list",
        api_url,
        token,
        token_file,
        lambda connection: operator.jobs_list(
            connection, output=output, state=state, alive=alive, limit=limit, offset=offset
        ),
    )


def logs(
    *,
    api_url: str | None,
    token: str | None,
    token_file: Path,
    task_instance_id: UUID,
    output: str,
    try_number: int | None,
    follow: bool,
    interval_s: float,
) -> int:
    """Print a task instance's trigger log lines; with ``follow``, keep printing new ones until Ctrl-C (exit 0)."""
    from tocsin_client import operator  # noqa: PLC0415

    try:
        return _operator(
            "logs",
            api_url,
            token,
            token_file,
            lambda connection: operator.logs(
                connection,
                task_instance_id,
                output=output,
                try_number=try_number,
                follow=follow,
                interval_s=interval_s,
            ),
        )
    except KeyboardInterrupt:
        return 0  # Ctrl-C is how a follower stops: nothing went wrong
