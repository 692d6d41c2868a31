#!/usr/bin/env bash
# Makes sure the local PostgreSQL answers on 127.0.0.1:5432 (starting the Debian cluster if it is down).
set -euo pipefail
ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ready; then exit 0; fi
if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start || true
fi
for _ in $(seq 1 60); do ready && exit 0; sleep 0.5; done
echo "PostgreSQL is not reachable on 127.0.0.1:5432; start it, or point TOCSIN_TEST_POSTGRES_DSN at one" >&2
exit 1
