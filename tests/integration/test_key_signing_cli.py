"""``tocsin key signing add|promote|retire|list``: the keyring file they keep, and every operator mistake as one line
with exit code 2. Most run through the command's ``main`` in this process (cheap); the ones that matter as real
processes (``api-server`` refusing a bad keyring, ``token create`` signing with the keyring) run as such."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from tocsin_cli import main

SECRET = "key-signing-cli-secret-" + "k" * 40
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def tocsin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Run]:
    """Runs ``tocsin ARGS`` in a folder of its own with TOCSIN_JWT_KEYS_FILE=./keys.json; answers (code, out, err)."""
    monkeypatch.chdir(tmp_path)
    for name in ("TOCSIN_JWT_SECRET", "TOCSIN_JWT_SECRET_FILE"):
        monkeypatch.delenv(name, raising=False)
    keys = tmp_path / "keys.json"
    monkeypatch.setenv("TOCSIN_JWT_KEYS_FILE", str(keys))

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["key", "signing", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return keys, run


def keyring(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test__the_rotation_sequence_from_a_new_file(tocsin: tuple[Path, Run]) -> None:
    keys, run = tocsin
    code, first, err = run("add", "--kid", "one")
    assert (code, first) == (0, "one\n")
    assert "created" in err and "which signs" in err
    assert keys.stat().st_mode & 0o777 == 0o600
    assert keyring(keys)["signing"] == "one"
    code, second, err = run("add")
    kid = second.strip()
    assert code == 0 and kid != "one" and f"tocsin key signing promote {kid}" in err
    assert run("list") == (0, f"{'one':<{len(kid)}}  signs and verifies\n{kid}  verifies\n", "")
    assert run("promote", kid)[:2] == (0, "")
    assert run("list", "--signing")[:2] == (0, f"{kid}\n")
    code, _, err = run("retire", "one")
    assert code == 0 and "retired one" in err
    assert list(keyring(keys)["keys"]) == [kid]


def test__a_new_file_imports_todays_secret_as_legacy(tocsin: tuple[Path, Run], monkeypatch: pytest.MonkeyPatch) -> None:
    keys, run = tocsin
    monkeypatch.setenv("TOCSIN_JWT_SECRET", SECRET)
    code, out, err = run("add")
    assert code == 0 and "as key legacy" in err and "restart them one at a time" in err
    stored = keyring(keys)
    assert stored["signing"] == "legacy"
    assert stored["keys"] == {"legacy": SECRET, out.strip(): stored["keys"][out.strip()]}
    assert SECRET not in run("list")[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("retire", "one"), "one is the key that signs; promote another first"),
        (("retire", "nope"), "has no key 'nope' (its keys: one)"),
        (("promote", "nope"), "has no key 'nope' (its keys: one)"),
        (("add", "--kid", "one"), "already has a key 'one'"),
        (("add", "--kid", "no spaces"), "'no spaces' is not a key id"),
        (("add", "--kid", "legacy"), "'legacy' is the id of the secret a new keyring imports"),
    ],
    ids=["retire-signing", "retire-unknown", "promote-unknown", "add-taken", "add-bad-kid", "add-legacy"],
)
def test__mistakes_on_a_keyring__are_one_line_and_exit_2(
    tocsin: tuple[Path, Run], args: tuple[str, ...], message: str
) -> None:
    keys, run = tocsin
    assert run("add", "--kid", "one")[0] == 0
    before = keys.read_bytes()
    code, out, err = run(*args)
    assert (code, out) == (2, "")
    assert one_line(err).startswith(f"tocsin key signing {args[0]}: ") and message in err
    assert keys.read_bytes() == before  # nothing written


def test__a_file_that_cannot_serve__is_one_line_and_exit_2(
    tocsin: tuple[Path, Run], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    keys, run = tocsin
    assert run("add", "--kid", "one")[0] == 0
    keys.chmod(0o644)
    code, _, err = run("list")
    assert code == 2 and "(mode 0644)" in one_line(err) and f"chmod 600 {keys}" in err
    code, _, err = run("promote", "one", "--file", str(tmp_path))
    assert code == 2 and "cannot be read: Is a directory" in one_line(err)
    code, _, err = run("retire", "one", "--file", str(tmp_path / "absent.json"))
    assert code == 2 and "does not exist; make it with: tocsin key signing add" in one_line(err)
    code, _, err = run("add", "--file", str(tmp_path / "no-such-folder" / "keys.json"))
    assert code == 2 and "cannot be written: No such file or directory" in one_line(err)
    (tmp_path / "broken.json").write_text('{"signing": "one", "keys": {"one": "short"}}')
    (tmp_path / "broken.json").chmod(0o600)
    code, _, err = run("list", "--file", str(tmp_path / "broken.json"))
    assert code == 2 and "key one holds a secret of 5 bytes" in one_line(err)
    monkeypatch.delenv("TOCSIN_JWT_KEYS_FILE")
    code, _, err = run("list")
    assert code == 2 and "no keyring file: set TOCSIN_JWT_KEYS_FILE" in one_line(err)


def process(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tocsin_cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test__token_create_signs_with_the_keyring__and_api_server_refuses_a_bad_one(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    env = {"PATH": "/usr/bin:/bin", "TOCSIN_JWT_KEYS_FILE": str(keys), "TOCSIN_JWT_SECRET": SECRET}
    assert process("key", "signing", "add", "--kid", "k1", env=env, cwd=tmp_path).returncode == 0
    made = process("token", "create", "--scope", "admin", env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert jwt.get_unverified_header(token)["kid"] == "legacy"  # the imported secret signs until k1 is promoted
    jwt.decode(token, SECRET, algorithms=["HS256"], audience="tocsin")
    keys.chmod(0o604)
    refused = process("api-server", "--port", "1", env=env, cwd=tmp_path)
    assert refused.returncode == 2
    assert one_line(refused.stderr).startswith("tocsin api-server: configuration error: TOCSIN_JWT_KEYS_FILE=")
    assert "chmod 600" in refused.stderr
