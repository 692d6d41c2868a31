"""The server side's commands (``api-server``, ``standalone``, ``db``, ``token create``, ``key create``,
``key rotate``, and ``key signing …`` from ``signing_key_commands``), called by the ``tocsin`` command with the values of their flags.

Each answers a configuration mistake with one line naming the variable and exit code 2. Imports stay inside the
functions: ``tocsin db current`` loads no web framework, ``tocsin token create`` no database driver.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec

from tocsin_server.config import ConfigError, reports_config_errors
from tocsin_server.signing_key_commands import (
    key_signing_add,
    key_signing_list,
    key_signing_promote,
    key_signing_retire,
)

if TYPE_CHECKING:
    from tocsin_server.config import Settings

__all__ = [
    "api_server",
    "db",
    "key_create",
    "key_rotate",
    "key_signing_add",
    "key_signing_list",
    "key_signing_promote",
    "key_signing_retire",
    "standalone",
    "token_create",
]

_P = ParamSpec("_P")
SELF_MODULE = "tocsin_cli"
"""The module that runs the ``tocsin`` command: the standalone starts its children through it."""
_WEEK_S = 7 * 86400
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's own variable (not a tocsin setting): where worker processes keep their metrics."""


def _reports_config_errors(command: str) -> Callable[[Callable[_P, int]], Callable[_P, int]]:
    return reports_config_errors(f"tocsin {command}: configuration error")


def configure_logs() -> None:
    """Route this process's log lines through the one pipeline (``TOCSIN_LOG_FORMAT``, ``TOCSIN_LOG_LEVEL``)."""
    from tocsin_wire.logs import configure_logging, load_log_settings  # noqa: PLC0415
    from tocsin_wire.settings import SettingsError  # noqa: PLC0415

    try:
        settings = load_log_settings(os.environ)
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None
    configure_logging(settings)


def _issue(settings: Settings, scopes: list[str], ttl_s: int, subject: str) -> str:
    from tocsin_server.web.tokens import TokenAuthority  # noqa: PLC0415

    authority = TokenAuthority.for_settings(settings)
    return authority.issue(subject, scopes, ttl_s)


def _serve(settings: Settings) -> None:
    """Run uvicorn. One process gets the app built from ``settings``; with several, each worker process builds its
    own from the same variables and folder (so the same secret resolves), as uvicorn imports the app by name."""
    import uvicorn  # noqa: PLC0415

    from tocsin_server.app import create_app  # noqa: PLC0415

    app: Any = create_app(settings) if settings.workers == 1 else "tocsin_server.asgi:create_from_env"
    with _metrics_folder(settings.workers):
        uvicorn.run(
            app,
            factory=settings.workers > 1,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            loop="uvloop",
            http="tocsin_server.web.http_limits:LimitedHttpToolsProtocol",  # httptools with the documented limits
            access_log=False,  # one line per request is ours (web/request_log.py), with its id and operation
            log_config=None,  # uvicorn's loggers propagate to the root handler that configure_logs set up
        )


def _check_metrics_folder() -> None:
    """A PROMETHEUS_MULTIPROC_DIR that is no folder would fail the first metric, a traceback: one line instead."""
    folder = os.environ.get(MULTIPROC_ENV)
    if folder is not None and not Path(folder).is_dir():
        msg = f"{MULTIPROC_ENV}={folder} is not a folder: create it (empty) or unset it"
        raise ConfigError(msg)


@contextlib.contextmanager
def _metrics_folder(workers: int) -> Iterator[None]:
    """Several workers share their metrics through files (prometheus_client's multiprocess mode, tocsin_server.metrics):
    unless the operator named a folder in PROMETHEUS_MULTIPROC_DIR, a private one lives as long as this command.
    Set before the workers start, which read it when they first import prometheus_client."""
    if workers == 1 or MULTIPROC_ENV in os.environ:
        yield
        return
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    folder = tempfile.mkdtemp(prefix="tocsin-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    try:
        yield
    finally:
        del os.environ[MULTIPROC_ENV]
        shutil.rmtree(folder, ignore_errors=True)


@_reports_config_errors("api-server")
def api_server(*, host: str | None, port: int | None, workers: int | None) -> int:
    """Flags that are None leave their settings to ``TOCSIN_HOST``, ``TOCSIN_PORT``, ``TOCSIN_WORKERS``."""
    from tocsin_server.config import load_settings  # noqa: PLC0415
    from tocsin_server.db.preflight import check_database  # noqa: PLC0415

    configure_logs()
    settings = load_settings(host=host, port=port, workers=workers)
    _check_metrics_folder()
    check_database(settings.database_url)  # a database mistake: one line, exit 2 (also with --workers > 1)
    _serve(settings)
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
    return f"{shlex.quote(sys.executable)} -m {SELF_MODULE}"


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner may read (0600), whatever was there before."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


@_reports_config_errors("standalone")
def standalone(
    *,
    host: str | None,
    port: int | None,
    capacity: int | None,
    token_file: Path,
    default_api_url: str,
    metrics_port: int | None = None,
) -> int:
    """The API server on SQLite (migrated) and one triggerer, as two supervised child processes stopped in order.
    ``metrics_port`` goes to the triggerer (its ``--metrics-port``); the API server serves its own ``/metrics``."""
    from tocsin_server import standalone as supervision  # noqa: PLC0415
    from tocsin_server.config import (  # noqa: PLC0415
        STANDALONE_SECRET_FILE,
        ensure_secret_file,
        load_settings,
        resolve_secret,
    )
    from tocsin_server.db import migrate  # noqa: PLC0415

    stop = supervision.StopRequest()
    stop.install()  # from here on, no signal can leave a child behind
    configure_logs()  # the children configure their own from the same variables
    where = load_settings(require_secret=False, host=host, port=port, standalone_capacity=capacity)
    host, port, capacity = where.host, where.port, where.standalone_capacity
    if not supervision.port_free(host, port):
        supervision.say(f"{host}:{port} is in use by another program; pick another port with --port")
        return 1
    if metrics_port is not None and not 0 < metrics_port <= 65535:
        msg = f"--metrics-port {metrics_port} is not a port (1-65535)"
        raise ConfigError(msg)
    if metrics_port is not None and not supervision.port_free("0.0.0.0", metrics_port):  # noqa: S104 - as the triggerer binds
        supervision.say(f"port {metrics_port} is in use by another program; pick another with --metrics-port")
        return 1
    secret, _ = resolve_secret(os.environ)
    if not where.jwt_keys_file:  # with a keyring (TOCSIN_JWT_KEYS_FILE), its keys sign and verify
        secret = secret or ensure_secret_file(Path(STANDALONE_SECRET_FILE))
    settings = load_settings(
        {**os.environ, "TOCSIN_JWT_SECRET": secret}, host=host, port=port, standalone_capacity=capacity
    )
    migrate.upgrade(settings.database_url)
    url = f"http://{host}:{port}"
    env = {**os.environ, "TOCSIN_DATABASE_URL": settings.database_url, "TOCSIN_JWT_SECRET": secret}
    command = [sys.executable, "-m", SELF_MODULE]
    server = supervision.Child(
        "the API server", [*command, "api-server", "--host", host, "--port", str(port)], lambda: env
    )

    def triggerer_env() -> dict[str, str]:  # a fresh token at every start, so a restart never carries an old one
        token = _issue(settings, ["triggerer"], _WEEK_S, "standalone-triggerer")
        return {**env, "TOCSIN_API_URL": url, "TOCSIN_TOKEN": token}

    metrics_flag = [] if metrics_port is None else ["--metrics-port", str(metrics_port)]
    triggerer = supervision.Child(
        "the triggerer", [*command, "triggerer", "--capacity", str(capacity), *metrics_flag], triggerer_env
    )
    server.start()
    if not supervision.wait_ready(url, server, stop):
        if not stop.count:
            supervision.say(f"the API server did not start at {url}")
        server.stop(stop, supervision.SERVER_GRACE_S)
        return 0 if stop.count else 1
    triggerer.start()
    admin_token = _issue(settings, ["admin", "worker"], _WEEK_S, "standalone")
    _write_private(token_file, admin_token + "\n")
    tocsin = _self_command()
    api_url = "" if url == default_api_url else f" --api-url {url}"
    supervision.show(
        f"tocsin standalone\n  API:       {url}\n  docs:      {url}/docs\n  database:  {settings.database_url}\n"
        f"  triggerer: pid {triggerer.pid}, capacity {capacity}\n"
        f"  try it:    {tocsin} demo --tasks 100{api_url}\n"
        f"  a token:   {tocsin} token create --scope admin --scope worker   (in this folder)\n"
        f"  admin token (7 days, also in ./{token_file}):\n{admin_token}\n",
    )
    return supervision.supervise(server, triggerer, stop)


@_reports_config_errors("db")
def db(*, action: str, revision: str | None) -> int:
    from tocsin_server.config import load_settings  # noqa: PLC0415
    from tocsin_server.db import migrate  # noqa: PLC0415

    url = load_settings(require_secret=False).database_url
    if action == "upgrade":
        migrate.upgrade(url, revision or "head")
    elif action == "downgrade":
        migrate.downgrade(url, revision or "-1")
    sys.stdout.write(f"{migrate.current(url) or 'base (empty)'}\n")
    return 0


@_reports_config_errors("token create")
def token_create(*, scopes: list[str], ttl_s: int, subject: str) -> int:
    from tocsin_server.config import load_settings  # noqa: PLC0415

    settings = load_settings()
    sys.stdout.write(_issue(settings, scopes, ttl_s, subject) + "\n")
    return 0


def key_create() -> int:
    from cryptography.fernet import Fernet  # noqa: PLC0415

    sys.stdout.write(Fernet.generate_key().decode() + "\n")
    return 0


@_reports_config_errors("key rotate")
def key_rotate(*, batch_size: int) -> int:
    """Re-encrypt every stored secret with the first key, one committed transaction per batch (servers keep running:
    they decrypt with every key, and each update is guarded by the value it read)."""
    import asyncio  # noqa: PLC0415

    from sqlalchemy.ext.asyncio import create_async_engine  # noqa: PLC0415

    from tocsin_server.config import load_settings  # noqa: PLC0415
    from tocsin_server.db.cipher import KwargsCipher, KwargsCipherError  # noqa: PLC0415
    from tocsin_server.db.preflight import check_database  # noqa: PLC0415
    from tocsin_server.db.secrets_at_rest import rewrite  # noqa: PLC0415

    settings = load_settings(require_secret=False)
    if not settings.trigger_kwargs_keys:
        msg = "TOCSIN_TRIGGER_KWARGS_KEYS is not set: put the new key first and the old ones after it"
        raise ConfigError(msg)
    if batch_size < 1:
        msg = "--batch-size must be at least 1"
        raise ConfigError(msg)
    check_database(settings.database_url)
    cipher = KwargsCipher(settings.trigger_kwargs_keys)

    async def run() -> int:
        engine = create_async_engine(settings.database_url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(
                    lambda sync: rewrite(sync, cipher.reseal, batch_size=batch_size, commit=sync.commit)
                )
        finally:
            await engine.dispose()

    try:
        changed = asyncio.run(run())
    except KwargsCipherError as exc:
        sys.stderr.write(
            f"tocsin key rotate: {exc} (the batches before it are done; run it again once the keys are right)\n"
        )
        return 1
    sys.stdout.write(
        f"re-encrypted {changed} stored values with the first key; the other keys can be removed once every server "
        "runs with the new key first\n"
    )
    return 0
