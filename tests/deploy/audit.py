"""A history of the server's own writes, kept by the test's PostgreSQL while the deployment runs.

The server keeps only the present: a trigger row names its holder now, a duty row when it last ran. Row
triggers (installed after the migration, in the test's database only) append every change of those two
columns to tables of the test's, inside the writing transaction: a rolled-back write leaves no history, a
committed one always does. ``application_name`` names the server process that wrote (the server sets it).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime

INSTALL = """
CREATE TABLE test_audit_duty_run (
    seq bigserial PRIMARY KEY, name text NOT NULL, last_run timestamptz NOT NULL, writer text NOT NULL
);
CREATE FUNCTION test_audit_duty_run() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.last_run IS DISTINCT FROM OLD.last_run THEN
        INSERT INTO test_audit_duty_run (name, last_run, writer)
        VALUES (NEW.name, NEW.last_run, current_setting('application_name'));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER test_audit_duty_run AFTER INSERT OR UPDATE ON server_duty
    FOR EACH ROW EXECUTE FUNCTION test_audit_duty_run();

CREATE TABLE test_audit_holder (
    seq bigserial PRIMARY KEY, trigger_id bigint NOT NULL, holder bigint, deleted boolean NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION test_audit_holder() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO test_audit_holder (trigger_id, holder, deleted) VALUES (OLD.id, OLD.triggerer_id, true);
    ELSIF TG_OP = 'INSERT' OR NEW.triggerer_id IS DISTINCT FROM OLD.triggerer_id THEN
        INSERT INTO test_audit_holder (trigger_id, holder, deleted) VALUES (NEW.id, NEW.triggerer_id, false);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER test_audit_holder AFTER INSERT OR UPDATE OR DELETE ON trigger
    FOR EACH ROW EXECUTE FUNCTION test_audit_holder();
"""

DUTY_RUNS = "SELECT name, last_run, writer FROM test_audit_duty_run ORDER BY name, last_run"
HOLDERS = "SELECT trigger_id, holder, deleted FROM test_audit_holder ORDER BY trigger_id, seq"


@dataclass(frozen=True)
class DutyRun:
    name: str
    last_run: datetime
    writer_pid: int


def writer_pid(application_name: str) -> int:
    """The pid in ``tocsin-api-server <pid>@<host>``; -1 when another program wrote."""
    prefix = "tocsin-api-server "
    if not application_name.startswith(prefix):
        return -1
    return int(application_name.removeprefix(prefix).split("@", 1)[0])


def holders_by_trigger(rows: list[tuple[int, int | None, bool]]) -> dict[int, list[int | None]]:
    """Each trigger's holders in the order they were written (None: nobody), ending in None when deleted."""
    history: dict[int, list[int | None]] = {}
    for trigger_id, holder, deleted in rows:
        history.setdefault(trigger_id, []).append(None if deleted else holder)
    return history


def handovers(history: list[int | None]) -> list[tuple[int, int]]:
    """Moves straight from one job to another (never through "nobody"): two jobs would have held it at once."""
    return [(a, b) for a, b in itertools.pairwise(history) if a is not None and b is not None and a != b]
