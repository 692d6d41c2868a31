"""The ``tocsin`` command line: tokens, migrations and configuration errors."""

from __future__ import annotations

import os
import subprocess
import sys

import jwt
import pytest

SECRET = "cli-test-secret-" + "c" * 40


def tocsin(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tocsin_cli", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test__token_create__prints_the_token_alone() -> None:
    result = tocsin(
        "token", "create", "--scope", "admin", "--scope", "worker", "--ttl", "30m", env={"TOCSIN_JWT_SECRET": SECRET}
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert result.stdout == token + "\n"
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="tocsin")
    assert claims["scope"] == "admin worker"
    assert claims["exp"] - claims["iat"] == 1800


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("token", "create", "--scope", "admin"), {"TOCSIN_JWT_SECRET": "short"}, "TOCSIN_JWT_SECRET"),
        (("token", "create", "--scope", "root"), {"TOCSIN_JWT_SECRET": SECRET}, "choose from admin, worker, triggerer"),
        (("token", "create", "--scope", "admin", "--ttl", "soon"), {"TOCSIN_JWT_SECRET": SECRET}, "--ttl"),
        (("db", "current"), {"TOCSIN_DATABASE_URL": "mysql://x/y"}, "TOCSIN_DATABASE_URL"),
        (("db", "current"), {"TOCSIN_DATABASE_URL": "postgresql://x/y"}, "asyncpg"),
        (("api-server",), {"TOCSIN_JWT_SECRET": SECRET, "TOCSIN_MAX_BODY_BYTES": "lots"}, "TOCSIN_MAX_BODY_BYTES"),
    ],
    ids=["short-secret", "bad-scope", "bad-ttl", "bad-url", "no-driver", "bad-number"],
)
def test__bad_configuration__is_a_clear_message(args: tuple[str, ...], env: dict[str, str], message: str) -> None:
    result = tocsin(*args, env=env)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test__db_upgrade_current_downgrade(tmp_path: object) -> None:
    env = {"TOCSIN_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db"}
    assert tocsin("db", "current", env=env).stdout.strip() == "base (empty)"
    upgraded = tocsin("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    head = upgraded.stdout.strip()
    assert head != "base (empty)"
    assert tocsin("db", "current", env=env).stdout.strip() == head
    assert tocsin("db", "downgrade", "base", env=env).stdout.strip() == "base (empty)"


def _in(folder: object, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
    return subprocess.run(
        [sys.executable, "-m", "tocsin_cli", *args],
        cwd=str(folder),
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test__token_create__in_the_standalone_folder__signs_with_its_secret(tmp_path: object) -> None:
    from pathlib import Path

    secret = "standalone-secret-" + "z" * 40
    (Path(str(tmp_path)) / "tocsin-jwt-secret").write_text(secret + "\n")
    result = _in(tmp_path, "token", "create", "--scope", "admin", "--scope", "worker")
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), secret, algorithms=["HS256"], audience="tocsin")
    assert claims["scope"] == "admin worker"


def test__token_create__without_any_secret__says_what_is_missing(tmp_path: object) -> None:
    result = _in(tmp_path, "token", "create", "--scope", "admin")
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert "no signing secret" in line
    assert "TOCSIN_JWT_SECRET" in line
    assert "TOCSIN_JWT_SECRET_FILE" in line
    assert "./tocsin-jwt-secret" in line


def test__a_short_secret_file__names_the_file_and_its_size(tmp_path: object) -> None:
    from pathlib import Path

    secret_file = Path(str(tmp_path)) / "secret"
    secret_file.write_text("tiny\n")
    result = _in(tmp_path, "token", "create", "--scope", "admin", env={"TOCSIN_JWT_SECRET_FILE": str(secret_file)})
    assert result.returncode == 2
    assert f"TOCSIN_JWT_SECRET_FILE={secret_file} holds a secret of 4 bytes" in result.stderr


def test__a_flag_variable_that_is_not_a_number__is_one_clear_line(tmp_path: object) -> None:
    result = _in(tmp_path, "api-server", env={"TOCSIN_PORT": "eighty", "TOCSIN_JWT_SECRET": SECRET})
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "TOCSIN_PORT='eighty' is not a valid int" in line
