"""The client side's commands (``tocsin triggerer``, ``tocsin demo``), called by the ``tocsin`` command with the
values of their flags. Nothing here needs the server stack."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Final

from tocsin_wire.settings import Env, SettingsError, load

__all__ = ["DEFAULT_API_URL", "DemoSettings", "demo", "triggerer"]

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
            sys.stdout.write(f"fire-to-resume: p50 {p50:.0f} ms, p99 {p99:.0f} ms (polled every 50 ms)\n")
        if result.late_deferrals:
            sys.stdout.write("note: deferring took longer than --delay; latencies include that overrun\n")
        return 0 if result.ok else 1

    try:
        return asyncio.run(main())
    except TocsinError as exc:
        sys.stderr.write(f"tocsin demo: {exc}\n")
        return 1
