"""The deploy test's private PostgreSQL: crashed and restarted at will, and gone afterwards even when the test
failed (the machine's shared PostgreSQL is never touched)."""

from __future__ import annotations

import pytest

from harness.private_postgres import private_postgres
from tests.deploy.deployment import query
from tests.support.processes import is_gone


def test__crash_restart_and_cleanup_after_a_failure() -> None:
    with pytest.raises(RuntimeError, match="the test failed"), private_postgres() as pg:
        assert query(pg.dsn, "SELECT 1") == [(1,)]
        assert query(pg.dsn, "SHOW port") == [(str(pg.port),)]
        folder = pg.data.parent
        pg.stop("immediate")
        assert query(pg.dsn, "SELECT 1") is None
        pg.start()
        assert query(pg.dsn, "SELECT 1") == [(1,)]
        postmaster = int((pg.data / "postmaster.pid").read_text().split()[0])
        raise RuntimeError("the test failed")  # what the context must survive
    assert is_gone(postmaster)
    assert not folder.exists()
