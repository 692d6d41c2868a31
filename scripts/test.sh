#!/usr/bin/env bash
# The whole test suite: installs into .venv, makes sure PostgreSQL is up, runs pytest on SQLite and
# PostgreSQL alike. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh dev
scripts/ensure-postgres.sh
exec .venv/bin/pytest -p no:cacheprovider "$@"
