"""Issue 9, item 4: /docs works offline, with a switcher for every API version.

A real ``tocsin api-server`` serves the page; the page and the assets it loads must name no other host, and
Debian's headless Chromium, with every host but 127.0.0.1 unresolvable, must render each version's operations
(and not those a later version added). Before the fix the page loaded Redoc from cdn.redoc.ly and rendered
nothing offline.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from tocsin_server.web.spec import load_spec
from tocsin_server.web.versioning import VERSIONS

from harness.databases import sqlite_database
from harness.live_server import LiveServer, live_server
from tests.conftest import SECRET

CHROMIUM = "chromium"
_URL = re.compile(r"""https?://[^\s"'<>)]+""")
_ASSET = re.compile(r"""(?:src|href)="([^"]+)\"""")
_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)""")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("docs-ui")
    with sqlite_database(tmp) as url, live_server(url, SECRET, tmp / "server.log") as live:
        yield live


def _chromium() -> str:
    found = shutil.which(CHROMIUM)
    if found is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium (.ci/run installs it)", pytrace=False)
    return found


def _foreign_urls(text: str, own_host: str) -> list[str]:
    return [u for u in _URL.findall(text) if urlsplit(u).hostname != own_host]


def _operations(version: str) -> dict[str, str]:
    """operationId -> "METHOD path" of every operation the published contract of ``version`` has."""
    spec = load_spec(version)
    return {
        op["operationId"]: f"{method.upper()} {path}"
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and "operationId" in op
    }


def _render(chromium: str, url: str, profile: Path) -> str:
    """The DOM after Swagger UI ran, with every host but ours unresolvable (offline, as far as the page can tell)."""
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test__docs_page_and_its_assets_name_no_other_host(server: LiveServer) -> None:
    own_host = urlsplit(server.url).hostname
    assert own_host is not None
    page = httpx.get(f"{server.url}/docs", timeout=10)  # no token: the docs are open
    assert page.status_code == 200, page.text
    assert _foreign_urls(page.text, own_host) == []
    assets = _ASSET.findall(page.text)
    assert any(a.endswith(".js") for a in assets), page.text
    for asset in assets:
        assert urlsplit(asset).netloc == "", f"{asset} is not served by us"
        response = httpx.get(f"{server.url}{asset}", timeout=10)
        assert response.status_code == 200, asset
        if asset.endswith(".css"):
            loaded = [u for u in _CSS_URL.findall(response.text) if not u.startswith("data:")]
            assert [u for u in loaded if urlsplit(u).netloc] == [], f"{asset} loads from another host"


def test__an_unknown_version_is_a_problem_not_a_page(server: LiveServer) -> None:
    response = httpx.get(f"{server.url}/docs", params={"version": "2020-01-01"}, timeout=10)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("version", VERSIONS)
def test__chromium_renders_each_versions_operations_offline(server: LiveServer, version: str, tmp_path: Path) -> None:
    chromium = _chromium()
    dom = _render(chromium, f"{server.url}/docs?version={version}", tmp_path / "profile")

    # The switcher: every served version, each pointing at its own contract.
    for listed in VERSIONS:
        assert f'value="/openapi.json?version={listed}"' in dom, f"the switcher lacks {listed}"

    ours = _operations(version)
    assert ours, version
    for operation_id, operation in ours.items():
        assert f"-{operation_id}" in dom, f"{operation} ({operation_id}) is not on the {version} page"
    later = {oid: op for v in VERSIONS if v > version for oid, op in _operations(v).items() if oid not in ours}
    for operation_id, operation in later.items():
        assert f"-{operation_id}" not in dom, f"{operation} ({operation_id}) is on the {version} page"
    if version == VERSIONS[0]:
        assert later, "the oldest version should lack operations added later"
        assert "/execution/jobs" not in dom
