#!/usr/bin/env bash
# The whole test suite: installs into .venv, makes sure PostgreSQL is up, runs pytest on SQLite and
# PostgreSQL alike, in TOCSIN_TEST_WORKERS processes (default 2: most tests wait on the real processes they
# start, so two workers halve the wall time even on two cores). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh dev
scripts/ensure-postgres.sh
exec .venv/bin/pytest -p no:cacheprovider -n "${TOCSIN_TEST_WORKERS:-2}" --dist worksteal "$@"
