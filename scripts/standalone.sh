#!/usr/bin/env bash
# The product on one machine: installs into .venv, migrates the embedded SQLite database
# (./tocsin.db), then runs the API server and a triggerer. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/tocsin standalone "$@"
