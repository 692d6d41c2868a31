#!/usr/bin/env bash
# Creates .venv (if needed) and installs tocsin into it with pinned versions.
#   scripts/bootstrap.sh          runtime + PostgreSQL driver
#   scripts/bootstrap.sh dev      + test, lint and codegen tools
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
extras=postgres
[ "${1:-}" = dev ] && extras=dev
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[${extras}]"
