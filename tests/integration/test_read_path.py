"""Reads and writes survive the database dropping every connection (a restart, a failover)."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest
from tocsin_server.web.tokens import TokenAuthority

from harness.live_server import LiveServer


async def _terminate_other_backends(database_url: str) -> int:
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        rows = await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return len(rows)
    finally:
        await connection.close()


def test__reads_recover_after_the_database_drops_every_connection(live: LiveServer, authority: TokenAuthority) -> None:
    database_url = live.env["TOCSIN_DATABASE_URL"]
    if not database_url.startswith("postgresql"):
        pytest.skip("only PostgreSQL can drop the server's connections from outside")
    headers = {"Authorization": f"Bearer {authority.issue('t', ['admin', 'worker'], 600)}"}

    async def run() -> None:
        async with httpx.AsyncClient(base_url=live.url, headers=headers, timeout=30) as client:
            assert (await client.put("/execution/variables/k", json={"value": "v"})).status_code == 200
            for _ in range(3):
                await asyncio.gather(*(client.get("/execution/variables/k") for _ in range(12)))
            assert await _terminate_other_backends(database_url) > 0
            responses = await asyncio.gather(*(client.get("/execution/variables/k") for _ in range(24)))
            assert [r.status_code for r in responses] == [200] * 24
            # the write engine's pooled connections died too: a checkout pings before use
            assert (await client.put("/execution/variables/k", json={"value": "w"})).status_code == 200

    asyncio.run(run())
